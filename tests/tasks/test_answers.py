import time

import pytest

from dopsd.tasks import get_task
from dopsd.tasks.answers import final_boxes, last_answer_tag, last_boxed, stated_answer
from dopsd.tasks.extraction import locate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{72}.", "72"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\boxed{3}}", "3"),
        (r"\boxed{1} and a cut-off \boxed{2", "1"),  # the last one never closes
        (r"{ stray \boxed{a} }}", "a"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        ("no box here", None),
    ],
)
def test_last_boxed_balances_nested_braces(text, expected):
    assert last_boxed(text) == expected


def test_backspace_is_not_a_box():
    # d1 wrote "\boxed" in a normal string, which is a backspace followed by "oxed"
    assert last_boxed("\boxed{7}") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>1</answer> <answer>2</answer>", "2"),
        ("<answer>\nline one\nline two\n</answer>", "\nline one\nline two\n"),  # multi-line: d1 lacked DOTALL
        ("<answer>cut short", "cut short"),
        ("<answer><answer>x</answer>", "x"),
        ("</answer> only a closing tag", None),
    ],
)
def test_last_answer_tag(text, expected):
    assert last_answer_tag(text) == expected


def no_bare_answer(completion):
    return None


def test_locate_prefers_the_tag_then_boxes_then_a_stated_answer_then_a_bare_last_line():
    completion = r"<reasoning>try \boxed{5}</reasoning><answer>The result is \boxed{6}.</answer> \boxed{7}"
    assert locate(completion, no_bare_answer) == (["6"], "tag")
    assert locate("<answer> 42 </answer>", no_bare_answer) == (["42"], "tag")
    assert locate("<answer>So the answer is 42. Done</answer>", no_bare_answer) == (["42"], "tag")
    assert locate(r"<answer>\boxed{1} or \boxed{2}</answer>", no_bare_answer) == (["1", "2"], "tag")
    assert locate("<answer>\\boxed{4", no_bare_answer) == ([], "tag")  # a box cut off
    assert locate(r"<answer>\boxed{18} or \boxed{1", no_bare_answer) == ([], "tag")  # cut off inside the tag
    assert locate(r"\boxed{4} and then \boxed{5", no_bare_answer) == ([], "boxed")  # the last box cut off
    assert locate("<answer>19</answer> or <answer>18</answer>", no_bare_answer) == (["19", "18"], "tag")
    assert locate("<answer>19</answer> is wrong, so <answer>18</answer>", no_bare_answer) == (["18"], "tag")
    assert locate(r"first \boxed{5}, wait, no. Final: \boxed{6}", no_bare_answer) == (["6"], "boxed")
    assert locate(r"first \boxed{5}. Wait, no: the answer is 6.", no_bare_answer) == (["6"], "phrase")
    assert locate(r"So \boxed{6}. I hope the answer is correct.", no_bare_answer) == (["6"], "boxed")
    assert locate("The answer is 18.\nThanks", no_bare_answer) == (["18"], "phrase")
    assert locate("  bare  ", lambda text: text.strip()) == (["bare"], "last_line")
    assert locate("12*40 =", no_bare_answer) == ([], "none")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{19} or \boxed{18}", ["19", "18"]),
        (r"$\boxed{2}$, $\boxed{3}$", ["2", "3"]),
        (r"\boxed{19}. Wait, that is wrong: \boxed{18}", ["18"]),
        (r"\boxed{\boxed{3}}", ["3"]),
    ],
)
def test_final_boxes_are_the_boxes_only_joining_words_separate(text, expected):
    assert final_boxes(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 18.", "18"),
        ("so the final answer is: $3.5$. Check: fine", "$3.5$"),
        ("Final Answer:\n\n42\nmore", "42"),
        ("48/2 = 24\n#### 72", "72"),
        ("The answer is", ""),
        ("No phrase here, 18", None),
        ("the answer isn't obvious", None),
    ],
)
def test_stated_answer(text, expected):
    assert stated_answer(text) == expected


@pytest.mark.parametrize(
    "completion",
    ["\\boxed{" * 150_000, "<answer>" * 125_000, "{" * 1_000_000, "\\boxed{" + "{" * 1_000_000, "x" * 1_000_000],
    ids=["open-boxes", "open-tags", "braces", "one-box-of-braces", "plain"],
)
def test_megabyte_adversarial_text_is_read_in_linear_time(completion):
    for name in ("gsm8k", "sudoku", "countdown", "math500"):
        start = time.perf_counter()
        get_task(name).extract(completion)
        assert time.perf_counter() - start < 2.0, name
