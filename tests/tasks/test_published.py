"""``--scoring d1``: the d1 / d-OPSD evaluation scripts' rules, quirks included, within time bounds."""

import time

import pytest

from dopsd.tasks import get_task
from dopsd.tasks.base import Example
from dopsd.tasks.published import hendrycks_equal, published_accuracy, score

PUZZLE, SOLUTION = "3102200002100320", "3142243142131324"  # empty cells 2, 5, 6, 7, 8, 11, 12, 15
SUDOKU = Example(0, PUZZLE, SOLUTION, {"puzzle": PUZZLE})
COUNTDOWN = Example(0, "30,100,93", "37", {"numbers": [30, 100, 93], "target": 37})


def d1(task_name, example, completion):
    return score(get_task(task_name), example, completion, "d1")


@pytest.mark.parametrize(
    ("completion", "value", "extracted"),
    [
        (r"\boxed{18} and later \boxed{19}", 1.0, "18.0"),  # the first box, not the last
        (r"<answer>\boxed{19 \text{ or } 18}</answer>", 0.0, "19.0"),  # the first number of the box
        (r"\boxed{\frac{36}{2}}", 0.0, "36.0"),  # the box ends at the first }
        ("<answer>It is 1,000 or 18</answer>", 1.0, "18.0"),  # the tag's last number
        ("The answer is 18.", 0.0, None),  # no tag, no box: nothing read
        ("<answer>18", 0.0, None),  # an unclosed tag is not read
        ("\\boxed{...} <answer>18</answer>", 1.0, "18.0"),
    ],
)
def test_gsm8k_rules(completion, value, extracted):
    result = d1("gsm8k", Example(0, "q", "18"), completion)
    assert (result.value, result.extracted) == (value, extracted)


@pytest.mark.parametrize(
    ("reference", "completion", "value"),
    [
        (r"\frac{1}{2}", r"\boxed{0.5}", 1.0),  # 0.5 is the one decimal normalised
        (r"\frac{1}{4}", r"\boxed{0.25}", 0.0),
        (r"\frac{1}{2}", r"<answer>\dfrac12</answer>", 1.0),
        (r"\frac{1}{2}", r"\boxed{1/2}", 1.0),
        ("5", r"\boxed{x=5}", 1.0),  # a name of at most two characters before = is dropped
        ("5", r"\boxed{5 \text{ cm}}", 1.0),  # units after "\text{ " are dropped
        ("5", "The answer is 5", 0.0),
        (r"\frac{1}{2}", r"\fbox{\frac{1}{2}}", 0.0),  # found, but remove_boxed refuses \fbox
        ("5", r"\boxed 5$ and more", 1.0),
    ],
)
def test_math_rules(reference, completion, value):
    assert d1("math500", Example(0, "p", reference), completion).value == value


def test_hendrycks_normalisation_falls_back_to_raw_equality():
    assert hendrycks_equal(r"\sqrt", r"\sqrt")  # normalising fails (nothing after \sqrt): raw text compared
    assert not hendrycks_equal("x/2", r"\frac{x}{2}")


@pytest.mark.parametrize(
    ("completion", "value"),
    [
        (r"\boxed{100 - 93 + 30}", 1.0),
        ("<answer>100-93+30=37</answer>", 1.0),
        ("Some text 100-93+30=37 more", 1.0),  # the expression before the first "= number", anywhere
        (r"\boxed{(100 \times 30) \div 30}", 0.0),
        ("100 − 93 + 30", 0.0),  # Unicode minus: not read
        ("The answer is 100 - 93 + 30", 0.0),  # the whole text has words in it
        ("100-93+030", 0.0),  # Python refuses a leading zero
        ("<answer>30**100-93</answer>", 0.0),
    ],
)
def test_countdown_rules(completion, value):
    assert d1("countdown", COUNTDOWN, completion).value == value


@pytest.mark.parametrize(
    ("completion", "value", "extracted"),
    [
        (f"<answer>{SOLUTION[:15]}</answer>", 7 / 8, SOLUTION[:15] + "0"),  # padded with 0: the last cell is wrong
        (f"<answer>{SOLUTION}1111</answer>", 1.0, SOLUTION),  # cut to 16
        (f"<answer>\n```\n{SOLUTION[:8]} \n{SOLUTION[8:]}\n```\n</answer>", 1.0, SOLUTION),
        (f"<answer>[[{','.join(SOLUTION[:4])}]]</answer>", 0.0, "[[3,1,4,2]]00000"),
        (f"x {SOLUTION} y", 1.0, SOLUTION),
        (f"x{SOLUTION}", 0.0, None),  # no word boundary
    ],
)
def test_sudoku_rules(completion, value, extracted):
    result = d1("sudoku", SUDOKU, completion)
    assert (result.value, result.extracted, result.weight) == (value, extracted, 8.0)


def test_a_padded_grid_counts_as_solved_when_the_missing_cell_is_a_clue():
    puzzle = "0" * 15 + SOLUTION[15]  # the last cell is a clue
    example = Example(0, puzzle, SOLUTION, {"puzzle": puzzle})
    assert d1("sudoku", example, f"<answer>{SOLUTION[:15]}</answer>").correct
    assert not get_task("sudoku").score(example, f"<answer>{SOLUTION[:15]}</answer>").correct


def test_sudoku_accuracy_is_pooled_over_cells():
    rows = [{"score": 1.0, "weight": 2.0, "correct": True}, {"score": 0.5, "weight": 8.0, "correct": False}]
    assert published_accuracy("sudoku", rows) == 0.6  # (2 + 4) / 10
    assert published_accuracy("gsm8k", rows) == 0.5


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="scoring mode"):
        score(get_task("gsm8k"), Example(0, "q", "1"), "1", "paper")


BOMBS = ["\\boxed{" * 150_000, "<answer>" * 125_000, "{" * 1_000_000, "x" * 1_000_000, "1+" * 500_000,
         "=1" * 500_000, "9" * 1_000_000, "</answer>" * 100_000, "```" * 300_000, "<answer>" + "```1 " * 200_000,
         "\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}", "<answer>9**9**9**9</answer>", "\\boxed{" + "9" * 1_000_000 + "}",
         "\\boxed{1} or " * 100_000, "<answer>1</answer> or " * 50_000, "answer:" + " " * 1_000_000 + "x",
         "answer " * 200_000, "<|eot_id|>" * 100_000]


@pytest.mark.parametrize("mode", ["dopsd", "d1"])
@pytest.mark.parametrize("name", ["gsm8k", "sudoku", "countdown"])
def test_megabyte_inputs_and_bombs_are_scored_within_a_second(mode, name):
    example = {"gsm8k": Example(0, "q", "18"), "sudoku": SUDOKU, "countdown": COUNTDOWN}[name]
    task = get_task(name)
    for completion in BOMBS:
        start = time.perf_counter()
        result = score(task, example, completion, mode)
        assert time.perf_counter() - start < 1.0, (mode, completion[:20])
        assert not result.correct


def test_math_d1_mode_on_bombs_needs_no_verifier_and_is_fast():
    task = get_task("math500")
    for completion in BOMBS:
        start = time.perf_counter()
        assert not score(task, Example(0, "p", "5"), completion, "d1").correct
        assert time.perf_counter() - start < 1.0, completion[:20]
