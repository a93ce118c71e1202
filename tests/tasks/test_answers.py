import time

import pytest

from dopsd.tasks.answers import answer_text, last_answer_tag, last_boxed


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


def test_answer_text_prefers_the_box_inside_the_tag():
    completion = r"<reasoning>try \boxed{5}</reasoning><answer>The result is \boxed{6}.</answer> \boxed{7}"
    assert answer_text(completion) == "6"
    assert answer_text("<answer> 42 </answer>") == "42"
    assert answer_text("  bare  ") == "bare"


@pytest.mark.parametrize(
    "completion",
    ["\\boxed{" * 150_000, "<answer>" * 125_000, "{" * 1_000_000, "\\boxed{" + "{" * 1_000_000, "x" * 1_000_000],
    ids=["open-boxes", "open-tags", "braces", "one-box-of-braces", "plain"],
)
def test_megabyte_adversarial_text_is_read_in_linear_time(completion):
    start = time.perf_counter()
    answer_text(completion)
    assert time.perf_counter() - start < 2.0
