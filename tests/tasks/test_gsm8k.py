import json
from fractions import Fraction
from pathlib import Path

import pytest

from dopsd.tasks import get_task
from dopsd.tasks.base import Example
from dopsd.tasks.gsm8k import parse_number

GSM8K_TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k_train.jsonl"


def accuracy(task, examples, completions) -> float:
    return sum(task.score(e, c).correct for e, c in zip(examples, completions, strict=True)) / len(examples)


@pytest.mark.skipif(not GSM8K_TRAIN.is_file(), reason=f"{GSM8K_TRAIN} is absent")
def test_whole_training_set_references_score_one_in_every_answer_style():
    task = get_task("gsm8k")
    examples = task.load(GSM8K_TRAIN)
    assert len(examples) == 7473
    styles = {
        "instruct reference": lambda e: task.reference_completion(e, "instruct"),
        "compact reference": lambda e: task.reference_completion(e, "compact"),
        "bare number": lambda e: e.answer,
        "answer tag": lambda e: f"<reasoning>\n{e.meta['solution']}\n</reasoning>\n<answer>\n{e.answer}\n</answer>",
        "boxed": lambda e: f"{e.meta['solution'].split('####')[0]}So the answer is \\boxed{{{e.answer}}}.",
        "dataset text": lambda e: e.meta["solution"],  # ends in "#### N"
    }
    for name, completion in styles.items():
        assert accuracy(task, examples, [completion(e) for e in examples]) == 1.0, name
    wrong = [f"<answer>\\boxed{{{Fraction(e.answer) + 1}}}</answer>" for e in examples]
    assert accuracy(task, examples, wrong) == 0.0


@pytest.mark.parametrize(
    ("reference", "completion"),
    [
        ("1234", "1,234"),
        ("1234", "$1,234.00"),
        ("1234", "<answer>\nThe total is 1234 dollars.\n</answer>"),
        ("1234", r"\boxed{1234.0}"),
        ("1234", r"<answer>\boxed{\$1,234}</answer>"),
        ("72", "72."),
        ("0.75", "3/4"),
        ("0.75", r"\frac{3}{4}"),
        ("-5", "<answer>-5</answer>"),
        ("18", "She pays 20 - 2 = 18.\nThe answer is 18."),
        ("18", "She pays 20 - 2 = 18.\n\n**18**"),
        ("448000", "<answer>\\boxed{448{,}000}</answer>"),
        ("448000", "\\boxed{448\\,000}"),
        ("-5", "<answer>\u22125</answer>"),  # a Unicode minus
    ],
)
def test_numbers_compare_numerically(reference, completion):
    assert get_task("gsm8k").score(Example(0, "q", reference), completion).correct


@pytest.mark.parametrize(
    ("reference", "completion"),
    [("1234", "1235"), ("12", "12,13"), ("5", "10-5=6"), ("3", "\\boxed{3} <answer>4</answer>")],
)
def test_different_numbers_score_zero(reference, completion):
    """(The last case: the <answer> tag is the final answer even when a \\boxed{} elsewhere is right.)"""
    score = get_task("gsm8k").score(Example(0, "q", reference), completion)
    assert score.value == 0.0 and not score.correct


@pytest.mark.parametrize(
    ("completion", "status"),
    [
        ("She pays 20 - 2 = 18", "no_answer"),  # a calculation, maybe cut short, states no final answer
        ("Each costs 6, so 3 cost 18 and then", "no_answer"),
        ("<answer>\\boxed{19 \\text{ or } 18}</answer>", "hedged"),
        ("<answer>\\boxed{19} or \\boxed{18}</answer>", "hedged"),
        ("\\boxed{19} or \\boxed{18}", "hedged"),
        ("<answer>18 or 19</answer>", "hedged"),
        ("<answer>no idea</answer>", "unparsable"),
    ],
)
def test_answerless_hedged_and_unparsable_completions_score_zero(completion, status):
    score = get_task("gsm8k").score(Example(0, "q", "18"), completion)
    assert (score.value, score.status) == (0.0, status)


def test_parse_number_edges():
    assert parse_number("1,000,000 people") == 1_000_000
    assert parse_number("-.5") == Fraction(-1, 2)
    assert parse_number("3/0") is None
    assert parse_number("9" * 500) is None
    assert parse_number("no digits") is None


def test_solution_reference_and_compact_prompt(tmp_path):
    task = get_task("gsm8k")
    path = tmp_path / "gsm.jsonl"
    path.write_text(json.dumps({"question": "How many?", "answer": "2 + 3 = <<2+3=5>>5\n#### 5"}) + "\n")
    [example] = task.load(path)
    assert (example.prompt, example.answer) == ("How many?", "5")
    assert example.meta["solution"].startswith("2 + 3")
    assert task.render_prompt(example, "compact") == "How many?\nAnswer: "
    instruct = task.render_prompt(example, "instruct")
    assert "How many?" in instruct and "<answer>" in instruct and "\\boxed{}" in instruct


def test_csv_with_the_same_columns(tmp_path):
    path = tmp_path / "gsm.csv"
    path.write_text('question,answer\n"How many, in all?","1 + 1\n#### 2"\n')
    [example] = get_task("gsm8k").load(path)
    assert (example.prompt, example.answer) == ("How many, in all?", "2")
