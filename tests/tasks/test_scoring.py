import json
import threading
from pathlib import Path

import pytest

from dopsd.tasks import DataError, countdown_splits, get_task, sample_data_path, sudoku_splits
from dopsd.tasks.base import Example
from dopsd.tasks.countdown import solve
from dopsd.tasks.sudoku import count_solutions

GSM8K_TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k_train.jsonl"


def accuracy(task, examples, completions):
    return sum(task.score(e, c).correct for e, c in zip(examples, completions)) / len(examples)


def test_gsm8k_training_set_references_score_one_in_every_answer_style():
    task = get_task("gsm8k")
    examples = task.load(GSM8K_TRAIN)
    assert len(examples) == 7473
    for style in ("instruct", "compact"):
        assert accuracy(task, examples, [task.reference_completion(e, style) for e in examples]) == 1.0
    assert accuracy(task, examples, [f"<answer>{e.answer}</answer>" for e in examples]) == 1.0
    assert accuracy(task, examples, [f"so the answer is \\boxed{{{e.answer}}}." for e in examples]) == 1.0
    assert accuracy(task, examples, [f"<answer>{int(e.answer) + 1}</answer>" for e in examples]) == 0.0


def test_gsm8k_numbers_compare_numerically():
    task = get_task("gsm8k")
    example = Example(0, "q", "1234")
    for good in ("1,234", "$1,234.00", "<answer>\nThe total is 1234 dollars.\n</answer>", "\\boxed{1234.0}"):
        assert task.score(example, good).correct, good
    assert not task.score(example, "1235").correct
    assert task.score(Example(0, "q", "0.75"), "3/4").correct


MATH_EQUIVALENT = [
    ("\\frac{1}{2}", ["0.5", "1/2", "\\dfrac{1}{2}", "\\frac12"]),
    ("\\frac{\\sqrt{2}}{2}", ["\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"]),
    ("[1, 3)", ["[1,3)"]),
    ("5", ["5\\text{ cm}", "x=5", "5.0"]),
    ("9\\pi", ["9 \\pi", "\\pi \\cdot 9"]),
]
MATH_DIFFERENT = [("\\frac{1}{2}", "0.25"), ("[1, 3)", "(1, 3)"), ("9\\pi", "9"), ("5", "6")]


def test_math_equivalent_forms_score_one_and_different_answers_zero():
    task = get_task("math500")
    for reference, forms in MATH_EQUIVALENT:
        example = Example(0, "p", reference)
        for form in forms:
            assert task.score(example, f"<answer>\\boxed{{{form}}}</answer>").correct, (reference, form)
    for reference, other in MATH_DIFFERENT:
        assert not task.score(Example(0, "p", reference), f"\\boxed{{{other}}}").correct, (reference, other)


def test_math_verify_works_off_the_main_thread():
    task = get_task("math500")
    results = []
    thread = threading.Thread(target=lambda: results.append(task.score(Example(0, "p", "\\frac{1}{2}"), "\\boxed{0.5}")))
    thread.start()
    thread.join()
    assert results[0].correct


def test_generated_sets_score_one_and_never_overlap():
    for name, splits in (("sudoku", sudoku_splits), ("countdown", countdown_splits)):
        task = get_task(name)
        train, heldout = splits(300, 100, seed=5)
        assert len(train) == 300 and len(heldout) == 100
        key = (lambda e: e.prompt) if name == "sudoku" else (lambda e: (tuple(sorted(e.meta["numbers"])), e.answer))
        assert not {key(e) for e in train} & {key(e) for e in heldout}
        for style in ("instruct", "compact"):
            assert accuracy(task, train + heldout, [task.reference_completion(e, style) for e in train + heldout]) == 1.0
        assert splits(300, 100, seed=5)[1][0].prompt == heldout[0].prompt
        assert splits(300, 100, seed=6)[1][0].prompt != heldout[0].prompt or splits(300, 100, seed=6)[1][1].prompt != heldout[1].prompt


def test_sudoku_puzzles_have_exactly_one_solution():
    train, _ = sudoku_splits(50, 0, seed=1)
    for example in train:
        assert count_solutions([int(c) for c in example.prompt], limit=3) == 1


def test_countdown_instances_are_solvable():
    train, _ = countdown_splits(50, 0, seed=1)
    for example in train:
        assert solve(example.meta["numbers"], example.meta["target"]) is not None


def test_sudoku_partial_credit():
    task = get_task("sudoku")
    example = Example(0, "1234341221434301", "1234341221434321", {"puzzle": "0234341221434300"})
    # empty cells: 0, 14, 15. Answer gets 0 and 14 right, 15 wrong.
    score = task.score(example, "<answer>1234 3412 2143 4322</answer>")
    assert score.value == pytest.approx(2 / 3) and not score.correct


def test_countdown_rules():
    task = get_task("countdown")
    example = Example(0, "30,100,93", "23", {"numbers": [30, 100, 93], "target": 23})
    assert task.score(example, "\\boxed{100 - 93 + 30 - 14}").value == 0.0  # extra number
    assert task.score(example, "<answer>\\boxed{100-(93-30)}</answer>").value == 0.0  # = 37
    assert task.score(example, "<answer>(100 - 93) + 30 = 37</answer>").value == 0.0
    assert task.score(example, "100 - 93 + 30 - 14").value == 0.0
    ok = Example(0, "30,100,93", "37", {"numbers": [30, 100, 93], "target": 37})
    assert task.score(ok, "<answer>\\boxed{100-93+30} = 37</answer>").correct
    assert task.reward(example, "100-93+30") == 0.1 and task.reward(ok, "100-93+30") == 1.0


ADVERSARIAL = [
    "",
    "x" * 1_000_000,
    "<answer><answer></answer>",
    "</answer>12<answer>",
    "\\boxed{\\boxed{",
    "(" * 10_000 + "1" + ")" * 10_000,
    "__import__('os').system('echo hi')",
    "<answer>\\boxed{__import__('os')}</answer>",
    "<answer>30**100-93</answer>",
    "<answer>30/(100-100)+93</answer>",
    "<answer>30+30+93</answer>",
    "<answer>(30).real+100+93</answer>",
    "<answer>'30'+100+93</answer>",
    "9" * 5000,
    "1e400",
]


@pytest.mark.parametrize("name", ["gsm8k", "math500", "sudoku", "countdown"])
def test_adversarial_completions_score_zero_without_raising(name):
    task = get_task(name)
    example = task.load(sample_data_path(name))[0]
    for completion in ADVERSARIAL:
        assert task.score(example, completion).value == 0.0, completion[:40]


def test_malformed_rows_name_the_file_and_line(tmp_path):
    bad_json = tmp_path / "gsm.jsonl"
    bad_json.write_text(json.dumps({"question": "q", "answer": "#### 3"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"gsm\.jsonl:2"):
        get_task("gsm8k").load(bad_json)
    no_final = tmp_path / "gsm2.jsonl"
    no_final.write_text(json.dumps({"question": "q", "answer": "3"}) + "\n")
    with pytest.raises(DataError, match=r"gsm2\.jsonl:1.*####"):
        get_task("gsm8k").load(no_final)
    sudoku = tmp_path / "s.csv"
    sudoku.write_text("Puzzle,Solution\n3102200002100320,3142243142131324\n31022000021003,3142243142131324\n")
    with pytest.raises(DataError, match=r"s\.csv:3"):
        get_task("sudoku").load(sudoku)
    countdown = tmp_path / "c.jsonl"
    countdown.write_text(json.dumps({"input": "1,2,3"}) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl:1.*output"):
        get_task("countdown").load(countdown)
    with pytest.raises(FileNotFoundError):
        get_task("countdown").load(tmp_path / "absent.jsonl")


def test_loaders_read_the_documented_formats(tmp_path):
    sudoku = tmp_path / "s.csv"
    sudoku.write_text("3102200002100320,3142243142131324\n")  # header optional
    [example] = get_task("sudoku").load(sudoku)
    assert (example.prompt, example.answer) == ("3102200002100320", "3142243142131324")
    countdown = tmp_path / "c.jsonl"
    countdown.write_text('{"input": "30,100,93", "output": "23"}\n')
    [example] = get_task("countdown").load(countdown)
    assert example.meta == {"numbers": [30, 100, 93], "target": 23}


def test_prompts_render_in_both_styles():
    task = get_task("sudoku")
    example = task.load(sample_data_path("sudoku"))[0]
    assert task.render_prompt(example, "compact") == example.prompt + "="
    instruct = task.render_prompt(example, "instruct")
    assert "<reasoning>" in instruct and "<answer>" in instruct and example.prompt in instruct
