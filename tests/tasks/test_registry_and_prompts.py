import pytest

from dopsd.tasks import TASK_NAMES, Task, get_task, sample_data_path
from dopsd.tasks.base import SYSTEM_PROMPT


class ChatTokenizer:
    """Stands in for a Hugging Face tokenizer with a chat template."""

    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


class PlainTokenizer:
    chat_template = None


def test_registry_names_and_unknown_name():
    assert set(TASK_NAMES) == {"gsm8k", "math500", "sudoku", "countdown", "countdown-steps"}
    for name in TASK_NAMES:
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
    with pytest.raises(ValueError, match="gsm8k.*math500.*sudoku.*countdown"):
        get_task("chess")


def test_thresholds():
    assert all(get_task(name).correct_threshold == 1.0 for name in TASK_NAMES)
    assert get_task("sudoku").filter_threshold == 0.25


@pytest.mark.parametrize("name", ["gsm8k", "math500", "sudoku", "countdown"])
def test_sample_files_load_and_their_references_score_one(name):
    task = get_task(name)
    examples = task.load(sample_data_path(name))
    assert len(examples) >= 12
    assert [e.index for e in examples] == list(range(len(examples)))
    assert len(task.load(sample_data_path(name), limit=5)) == 5
    for style in ("instruct", "compact"):
        completions = [task.reference_completion(e, style) for e in examples]
        assert all(task.score(e, c).value == 1.0 for e, c in zip(examples, completions)), style
        if style == "instruct":
            assert all("<answer>" in c and "</answer>" in c for c in completions)
            if name != "sudoku":
                assert all("\\boxed{" in c for c in completions)


@pytest.mark.parametrize("name", ["gsm8k", "math500", "sudoku", "countdown"])
def test_prompt_styles_and_chat_template(name):
    task = get_task(name)
    example = task.load(sample_data_path(name))[0]
    instruct = task.render_prompt(example, "instruct")
    assert instruct.startswith(SYSTEM_PROMPT) and "<reasoning>" in instruct
    assert task.render_prompt(example, "instruct", tokenizer=PlainTokenizer()) == instruct
    chat = task.render_prompt(example, "instruct", tokenizer=ChatTokenizer())
    assert chat == f"<|user|>{instruct}<|assistant|>"
    compact = task.render_prompt(example, "compact")
    assert "<reasoning>" not in compact and len(compact) < len(instruct)
    with pytest.raises(ValueError, match="instruct"):
        task.render_prompt(example, "verbose")


def test_worked_solutions_of_the_small_tasks():
    from dopsd.tasks import Example

    sudoku = get_task("sudoku")
    puzzle = Example(index=0, prompt="1034340021434300", answer="1234341221434321", meta={"puzzle": "1034340021434300"})
    assert sudoku.worked_solution(puzzle) == "r1c2=2 r2c3=1 r2c4=2 r4c3=2 r4c4=1"
    countdown = get_task("countdown")
    instance = Example(index=0, prompt="3,5,2", answer="16", meta={"numbers": [3, 5, 2], "target": 16,
                                                                   "solution": "(3+5)*2"})
    assert countdown.worked_solution(instance) == "(3+5)*2=16"


@pytest.mark.parametrize("name", TASK_NAMES)
def test_reference_prompt_carries_the_worked_solution(name):
    from dopsd.tasks.base import REFERENCE_INTRO, REFERENCE_OUTRO

    task = get_task(name)
    example = task.load(sample_data_path(name), limit=1)[0]
    solution = task.worked_solution(example)
    assert solution
    compact = task.render_prompt(example, "compact", reference=True)
    assert compact == f"{solution}|{task.compact_prompt(example)}"  # the response still continues the prompt
    instruct = task.render_prompt(example, "instruct", tokenizer=ChatTokenizer(), reference=True)
    plain = task.render_prompt(example, "instruct", tokenizer=ChatTokenizer())
    body = plain.removesuffix("<|assistant|>")
    assert instruct == f"{body}\n\n{REFERENCE_INTRO}\n{solution}\n\n{REFERENCE_OUTRO}<|assistant|>"
