import json
from collections import Counter
from fractions import Fraction

import pytest

from dopsd.tasks import DataError, countdown_splits, generate_countdown, get_task
from dopsd.tasks.arithmetic import ExpressionError, evaluate_expression
from dopsd.tasks.base import Example
from dopsd.tasks.countdown import instance_key, solve, write_countdown_jsonl


def instance(numbers, target) -> Example:
    return Example(0, ",".join(map(str, numbers)), str(target), {"numbers": list(numbers), "target": target})


@pytest.mark.parametrize(
    ("text", "value", "numbers"),
    [
        ("100-93+30", 37, [100, 93, 30]),
        ("100 - (93 - 30)", 37, [100, 93, 30]),
        ("2+3*4", 14, [2, 3, 4]),
        ("(2+3)*4", 20, [2, 3, 4]),
        ("8/4/2", 1, [8, 4, 2]),
        ("8/(4/2)", 4, [8, 4, 2]),
        ("7/2", Fraction(7, 2), [7, 2]),
        ("-3+5", 2, [3, 5]),  # unary minus is allowed
    ],
)
def test_safe_evaluator_values(text, value, numbers):
    assert evaluate_expression(text) == (value, numbers)


NOT_ARITHMETIC = [
    "1/0", "1/(2-2)", "2**3", "__import__('os')", "(1).real", "'1'+2", "1e3", "1.5+2", "abs(3)", "(1+2", "1+2)", "1 2",
    "", "(" * 10_000 + "1" + ")" * 10_000, "-" * 50 + "1", "1+" * 500 + "1", "9" * 20,
]


@pytest.mark.parametrize("text", NOT_ARITHMETIC, ids=lambda t: t if len(t) < 30 else f"{t[:10]}..{len(t)} chars")
def test_safe_evaluator_rejects(text):
    with pytest.raises(ExpressionError):
        evaluate_expression(text)


def test_multiset_of_numbers_must_match_exactly():
    task = get_task("countdown")
    example = instance([30, 100, 93], 37)
    assert task.score(example, "100-93+30").correct
    assert task.score(example, "30+100-93").correct
    assert not task.score(example, "100-93+30+0").correct  # an extra number
    assert not task.score(example, "100-93").correct  # a number missing
    assert not task.score(instance([30, 30, 7], 67), "30+30+30-23").correct  # 30 used three times
    assert task.score(instance([30, 30, 7], 67), "30+30+7").correct  # repeated numbers are a multiset
    assert not task.score(instance([30, 30, 7], 37), "30+7").correct


def test_right_hand_side_tags_and_reward():
    task = get_task("countdown")
    example = instance([30, 100, 93], 37)
    for completion in ("<answer>\\boxed{100-93+30} = 37</answer>", "<answer>(100 - 93) + 30 = 37</answer>",
                       "<reasoning>\n100-93=7\n7+30=37\n</reasoning>\n<answer>\n\\boxed{100-93+30}\n</answer>"):
        assert task.score(example, completion).correct, completion
    assert task.score(example, "<answer>\\boxed{100-(93-30)}</answer>").correct  # 100-63
    assert task.score(example, "<answer>100*93/30</answer>").value == 0.0
    assert task.reward(example, "100-93+30") == 1.0
    assert task.reward(example, "100*93/30") == 0.1  # valid expression, wrong value
    assert task.reward(example, "100+93") == 0.0  # a number missing is not a valid answer
    assert task.reward(example, "hello") == 0.0


@pytest.mark.parametrize(
    ("completion", "status", "value"),
    [
        ("<answer>\\boxed{(100 \\times 30) \\div 30 + 7}</answer>", "answered", 0.0),  # 30 twice: invalid
        ("<answer>100 \u2212 93 + 30</answer>", "answered", 1.0),
        ("<answer>(100 - 93) x 30 \u00f7 30</answer>", "answered", 0.0),
        ("\\boxed{\\left(100 - 93\\right) + 30}", "answered", 1.0),
        ("Equation: 100 - 93 + 30 = 37", "answered", 1.0),
        ("So, 100 - 93 + 30 = 37", "answered", 1.0),
        ("The answer is 100 - 93 + 30.", "answered", 1.0),
        ("100-93+30<|endoftext|>", "answered", 1.0),
        ("Try 100 - 93 =", "no_answer", 0.0),
        ("12+19+", "no_answer", 0.0),  # a compact completion cut off
        ("<answer>\\boxed{100*93/30} or \\boxed{100-93+30}</answer>", "hedged", 0.0),
        ("<answer>100 minus 93 plus 30</answer>", "unparsable", 0.0),
    ],
)
def test_operators_labels_and_statuses(completion, status, value):
    score = get_task("countdown").score(instance([30, 100, 93], 37), completion)
    assert (score.status, score.value) == (status, value)


def test_generated_instances_are_solvable_and_seeded():
    task = get_task("countdown")
    examples = generate_countdown(300, seed=1)
    for example in examples:
        value, used = evaluate_expression(example.meta["solution"])
        assert value == example.meta["target"] and Counter(used) == Counter(example.meta["numbers"])
        assert len(example.meta["numbers"]) == 3 and all(1 <= n <= 100 for n in example.meta["numbers"])
        for style in ("instruct", "compact"):
            assert task.score(example, task.reference_completion(example, style)).correct
    assert len({instance_key(e) for e in examples}) == 300
    assert [e.meta for e in generate_countdown(20, seed=4)] == [e.meta for e in generate_countdown(20, seed=4)]
    assert [e.meta for e in generate_countdown(20, seed=4)] != [e.meta for e in generate_countdown(20, seed=5)]


def test_solver_proves_unsolvable_instances():
    assert solve([1, 1, 1], 100) is None
    assert solve([30, 100, 93], 23) is not None


def test_splits_never_overlap():
    train, heldout = countdown_splits(400, 100, seed=5)
    assert (len(train), len(heldout)) == (400, 100)
    assert not {instance_key(e) for e in train} & {instance_key(e) for e in heldout}


def test_jsonl_round_trip_and_prompts(tmp_path):
    task = get_task("countdown")
    path = tmp_path / "cd.jsonl"
    write_countdown_jsonl(generate_countdown(3, seed=0), path)
    assert json.loads(path.read_text().splitlines()[0]).keys() == {"input", "output"}
    path.write_text('{"input": "30,100,93", "output": "23"}\n')
    [example] = task.load(path)
    assert example.meta == {"numbers": [30, 100, 93], "target": 23}
    assert task.render_prompt(example, "compact") == "30,100,93>23="
    assert task.score(example, task.reference_completion(example, "compact")).correct
    instruct = task.render_prompt(example, "instruct")
    assert "[30, 100, 93]" in instruct and "23" in instruct and "\\boxed{}" in instruct


@pytest.mark.parametrize(
    ("line", "problem"),
    [('{"input": "30,100,93"}', "output"), ('{"input": "30,x,93", "output": "23"}', "input"),
     ('{"input": "30", "output": "23"}', "two numbers"), ('{"input": "30,100,93", "output": "2 3"}', "output"),
     ('{"input": "30,100,93", "output": 23', "JSON")],
)
def test_malformed_rows_name_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "cd.jsonl"
    path.write_text('{"input": "1,2,3", "output": "6"}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"cd\.jsonl:2.*{problem}"):
        get_task("countdown").load(path)
