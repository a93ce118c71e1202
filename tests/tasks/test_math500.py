import threading
import time

import pytest

from dopsd.tasks import get_task, sample_data_path
from dopsd.tasks.base import Example
from dopsd.tasks.equivalence import MathVerifier
from dopsd.tasks.math500 import MATH500

# (reference, equivalent forms a model might write)
EQUIVALENT = [
    (r"\frac{1}{2}", ["0.5", "1/2", r"\dfrac{1}{2}", r"\frac12", r"\tfrac{1}{2}"]),
    (r"\frac{\sqrt{2}}{2}", [r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt{2}}"]),
    ("[1, 3)", ["[1,3)"]),
    ("5", [r"5\text{ cm}", "x=5", "5.0", r"5^\circ"]),
    ("x=3", ["3"]),
    (r"9\pi", [r"9 \pi", r"\pi \cdot 9"]),
    (r"2\sqrt{3}", [r"\sqrt{12}"]),
    ("-3, 3", ["3, -3"]),
    (r"\{1, 2\}", [r"\{2, 1\}"]),
    ("x^2+1", ["1+x^2"]),
]
DIFFERENT = [
    (r"\frac{1}{2}", "0.25"),
    (r"\frac{1}{2}", "0.6"),
    ("[1, 3)", "(1, 3)"),
    (r"9\pi", "9"),
    (r"\pi", "3.14"),
    ("(1,2)", "(2,1)"),
    ("5", "6"),
    ("-3, 3", "3"),
]


def test_equivalent_forms_score_one():
    task = get_task("math500")
    for reference, forms in EQUIVALENT:
        example = Example(0, "p", reference)
        for form in forms:
            assert task.score(example, f"<reasoning>...</reasoning><answer>\\boxed{{{form}}}</answer>").correct, form
            assert task.score(example, f"The answer is $\\boxed{{{form}}}$.").correct, form


def test_different_answers_score_zero():
    task = get_task("math500")
    for reference, other in DIFFERENT:
        score = task.score(Example(0, "p", reference), f"<answer>\\boxed{{{other}}}</answer>")
        assert score.value == 0.0 and score.extracted == other, (reference, other)


@pytest.mark.parametrize(
    ("completion", "correct", "status"),
    [
        ("We solve.\nTherefore $x = 5$.", True, "answered"),
        ("We solve.\n\n$$5$$", True, "answered"),
        ("We solve.\n\\[\n5\n\\]", True, "answered"),
        ("We solve.\nThe answer is $5$.", True, "answered"),
        ("We solve.\nThus the value is $5$", False, "no_answer"),  # prose: maybe cut short, not a stated answer
        ("We solve: $2x = 10$, so $x =", False, "no_answer"),
        ("\\boxed{4 \\text{ or } 5}", False, "hedged"),
        ("We get\n\\frac{10}{2", False, "no_answer"),  # cut off inside a brace
        ("<answer>\\frac{10}{2", False, "unparsable"),
    ],
)
def test_last_lines_phrases_and_hedges(completion, correct, status):
    score = get_task("math500").score(Example(0, "p", "5"), completion)
    assert (score.correct, score.status) == (correct, status)


def test_bare_answers_and_the_sample_file_references():
    task = get_task("math500")
    examples = task.load(sample_data_path("math500"))
    assert len(examples) >= 10
    for style in ("instruct", "compact"):
        assert all(task.score(e, task.reference_completion(e, style)).correct for e in examples), style


def test_scoring_works_off_the_main_thread():
    task = get_task("math500")
    results = []

    def score_both():
        results.append(task.score(Example(0, "p", r"\frac{1}{2}"), r"\boxed{0.5}").correct)
        results.append(task.score(Example(0, "p", r"\frac{1}{2}"), r"\boxed{0.6}").correct)

    threads = [threading.Thread(target=score_both) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 3 and results.count(False) == 3


@pytest.mark.slow
def test_runaway_answers_are_cut_off_in_a_thread():
    """Inputs that keep sympy busy for minutes (some at parse time, some inside C big-int code) score 0 within
    the verifier's hard limit, and the verifier still works afterwards."""
    verifier = MathVerifier(timeout=1, hard_limit=2)
    task = MATH500(verifier)
    runaway = [r"2^{10^{10}}", r"\binom{10^6}{500000}", r"\gcd(10^{10^{10}}, 6)"]
    results = []

    def score_all():
        for answer in runaway:
            start = time.perf_counter()
            value = task.score(Example(0, "p", "2"), f"\\boxed{{{answer}}}").value
            results.append((value, time.perf_counter() - start))
        results.append((task.score(Example(0, "p", "2"), r"\boxed{2}").value, 0.0))

    thread = threading.Thread(target=score_all)
    thread.start()
    thread.join(timeout=60)
    verifier.close()
    assert not thread.is_alive()
    assert [value for value, _ in results] == [0.0, 0.0, 0.0, 1.0]
    assert max(seconds for _, seconds in results) < verifier.hard_limit + 5  # + starting a fresh child


def test_overlong_answers_are_not_sent_to_math_verify():
    task = get_task("math500")
    score = task.score(Example(0, "p", "1"), "\\boxed{" + "1+" * 1000 + "1}")
    assert score.value == 0.0 and score.extracted is None


def test_missing_hub_support_asks_for_a_local_file(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(ValueError, match="local"):
        get_task("math500").load()


def test_a_worker_that_cannot_start_is_reported(tmp_path, monkeypatch):
    from dopsd.errors import DopsdError
    from dopsd.tasks import equivalence

    fake = tmp_path / "worker.py"
    fake.write_text('print(\'{"error": "math-verify is not installed"}\', flush=True)\n')
    monkeypatch.setattr(equivalence, "WORKER", fake)
    with pytest.raises(DopsdError, match="math-verify is not installed"):
        MathVerifier().equivalent("1", "1")


def test_a_forked_copy_starts_its_own_worker():
    verifier = MathVerifier(timeout=2)
    assert verifier.equivalent("1", "1.0")
    parents = verifier._process
    verifier._owner = -1  # what a fork would see: another process started the child
    assert verifier.equivalent("1", "1.0")
    assert verifier._process is not parents and parents.poll() is None  # the parent's child is left running
    verifier.close()
    parents.kill()
    parents.wait()
