"""Hostile or broken completions score 0, quickly, without raising, for every task."""

import time

import pytest

from dopsd.tasks import get_task, sample_data_path
from dopsd.tasks.equivalence import MathVerifier
from dopsd.tasks.math500 import MATH500

NESTED = "(" * 10_000 + "1" + ")" * 10_000
ADVERSARIAL = [
    "",
    "   \n\t",
    "x" * 1_000_000,
    "<answer>" * 100_000,
    "\\boxed{" * 100_000,
    "<answer><answer></answer>",
    "</answer></answer><answer>",
    "<answer>\\boxed{</answer>",
    "\\boxed{\\boxed{",
    NESTED,
    f"<answer>{NESTED}</answer>",
    f"\\boxed{{{NESTED}}}",
    "__import__('os').system('echo hi')",
    "<answer>\\boxed{__import__('os')}</answer>",
    "<answer>open('/etc/passwd').read()</answer>",
    "<answer>(30).real+100+93</answer>",
    "<answer>'30'+100+93</answer>",
    "<answer>30**100-93</answer>",
    "<answer>9**9**9**9</answer>",
    "<answer>30/(100-100)+93</answer>",
    "<answer>1/0</answer>",
    "\\boxed{2^{10^{10}}}",
    "\\boxed{(10^{100})!}",
    "9" * 5000,
    "\\boxed{" + "9" * 5000 + "}",
    "1e400",
    "<answer>nan</answer>",
    "<answer>-inf</answer>",
    "\x00\x01\x02\ud800",
]


@pytest.fixture(scope="module")
def math_task():
    verifier = MathVerifier(timeout=1, hard_limit=2)  # short limits keep the suite fast; the logic is the same
    yield MATH500(verifier)
    verifier.close()


@pytest.mark.parametrize("name", ["gsm8k", pytest.param("math500", marks=pytest.mark.slow), "sudoku",
                                  "countdown"])
def test_adversarial_completions_score_zero(name, math_task):
    task = math_task if name == "math500" else get_task(name)
    example = task.load(sample_data_path(name))[0]
    limit = 8.0 if name == "math500" else 2.0
    for completion in ADVERSARIAL:
        start = time.perf_counter()
        score = task.score(example, completion)
        assert score.value == 0.0 and not score.correct, completion[:40]
        assert task.reward(example, completion) == 0.0, completion[:40]
        assert time.perf_counter() - start < limit, completion[:40]
