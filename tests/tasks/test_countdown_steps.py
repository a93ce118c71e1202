import json

import pytest

from dopsd.tasks import DataError, countdown_steps_splits, generate_countdown_steps, get_task
from dopsd.tasks.base import Example
from dopsd.tasks.countdown_steps import check_chain, instance_key, solve_chain, write_countdown_steps_jsonl


def instance(numbers, target) -> Example:
    return Example(0, ",".join(map(str, numbers)), str(target), {"numbers": list(numbers), "target": target})


@pytest.mark.parametrize(
    ("chain", "valid", "correct"),
    [
        ("7*8=56,3+2=5,56-5=51", True, True),
        ("8*7=56,2+3=5,56-5=51", True, True),  # either order of operands
        ("7*8=56,56-3=53,53-2=51", True, True),
        ("3*2=6,6+8=14", True, False),  # valid, not every number used, ends elsewhere
        ("7*8=56,3+2=5,56-5=50", False, False),  # wrong arithmetic
        ("7*8=57,3+2=5,57-6=51", False, False),
        ("7*8=56,56-7=49,49+2=51", False, False),  # 7 given once, used twice
        ("7*8=56,3+2=5,56-5=51,51-5=46", False, False),  # a result used after it was consumed
        ("7*9=63,63-12=51", False, False),  # numbers never given
        ("2-3=-1", False, False),  # negative result: not even parsed
        ("3-3=0", False, False),  # no 3 twice; results must be positive anyway
        ("8/3=2", False, False),  # inexact division
        ("8/2=4,4*7=28,28+3=31", True, False),
        ("", False, False),
        ("51", False, False),
        ("7*8=56;3+2=5", False, False),  # the verifier reads canonical chains only
        ("__import__('os')", False, False),
        ("7*8=056,3+2=5,056-5=51", False, False),  # leading zeros
    ],
)
def test_verifier_exact_cases(chain, valid, correct):
    assert check_chain([7, 8, 3, 2], 51, chain) == (valid, correct)


def test_repeated_given_numbers_can_each_be_used_once():
    assert check_chain([3, 3, 2], 18, "3*3=9,9*2=18") == (True, True)
    assert check_chain([3, 2], 18, "3*3=9,9*2=18") == (False, False)
    assert check_chain([8, 4], 2, "8/4=2") == (True, True)
    assert check_chain([4, 4], 1, "4-4=0,0+1=1") == (False, False)


def test_scores_rewards_and_extraction():
    task = get_task("countdown-steps")
    example = instance([7, 8, 3, 2], 51)
    assert task.score(example, "7*8=56,3+2=5,56-5=51").correct
    assert task.score(example, "7 × 8 = 56, 3 + 2 = 5, 56 − 5 = 51").correct  # spaces and Unicode operators
    assert task.score(example, "<answer>\n\\boxed{7*8=56,3+2=5,56-5=51}\n</answer>").correct
    wrong = task.score(example, "7*8=56,3+2=5,56-5=50")
    assert not wrong.correct and wrong.value == 0.0 and wrong.status == "answered"
    assert task.score(example, "hello there").value == 0.0
    assert task.reward(example, "7*8=56,3+2=5,56-5=51") == 1.0
    assert task.reward(example, "3*2=6,6+8=14") == 0.1  # valid, misses the target
    assert task.reward(example, "7*8=56,56-7=49,49+2=51") == 0.0  # reuses 7
    assert task.reward(example, "7+8=") == 0.0


def test_solver_finds_the_shortest_chain_or_proves_there_is_none():
    assert solve_chain([7, 8, 3, 2], 15) in ("7+8=15", "8+7=15")
    chain = solve_chain([7, 8, 3, 2], 51)
    assert chain is not None and check_chain([7, 8, 3, 2], 51, chain) == (True, True)
    assert solve_chain([1, 1], 50) is None
    assert solve_chain([5, 6], 5) is None  # a given number needs no steps, and a chain has at least one


def test_generator_is_seeded_and_its_solutions_are_three_verified_steps():
    task = get_task("countdown-steps")
    examples = generate_countdown_steps(200, seed=3)
    assert [e.meta for e in generate_countdown_steps(50, seed=3)] == [e.meta for e in examples[:50]]
    assert [e.meta for e in generate_countdown_steps(50, seed=4)] != [e.meta for e in examples[:50]]
    assert len({instance_key(e) for e in examples}) == 200
    for example in examples:
        numbers, target = example.meta["numbers"], example.meta["target"]
        assert len(numbers) == 4 and all(1 <= n <= 9 for n in numbers) and 10 <= target <= 36
        assert example.meta["solution"].count(",") == 2 and 15 <= len(example.meta["solution"]) <= 22
        assert example.meta["solution"].startswith(f"{numbers[0]}") and not set(example.meta["solution"]) & set("*/")
        for style in ("instruct", "compact"):
            assert task.score(example, task.reference_completion(example, style)).correct


def test_splits_never_overlap():
    train, heldout = countdown_steps_splits(400, 100, seed=5)
    assert (len(train), len(heldout)) == (400, 100)
    assert not {instance_key(e) for e in train} & {instance_key(e) for e in heldout}


def test_jsonl_round_trip_prompts_and_bad_rows(tmp_path):
    task = get_task("countdown-steps")
    path = tmp_path / "cs.jsonl"
    examples = generate_countdown_steps(3, seed=0)
    write_countdown_steps_jsonl(examples, path)
    assert json.loads(path.read_text().splitlines()[0]).keys() == {"input", "output", "solution"}
    assert [e.meta for e in task.load(path)] == [e.meta for e in examples]
    path.write_text('{"input": "7,8,3,2", "output": "51"}\n')
    [example] = task.load(path)
    assert example.meta == {"numbers": [7, 8, 3, 2], "target": 51}
    assert task.render_prompt(example, "compact") == "7,8,3,2>51:"
    assert task.score(example, task.reference_completion(example, "compact")).correct  # solved on the fly
    assert task.render_prompt(example, "compact", reference=True).endswith("|7,8,3,2>51:")
    assert "[7, 8, 3, 2]" in task.render_prompt(example, "instruct")
    path.write_text('{"input": "7,8,3,2", "output": "51", "solution": "7*8=56,56-5=51"}\n')
    with pytest.raises(DataError, match="does not reach"):
        task.load(path)
