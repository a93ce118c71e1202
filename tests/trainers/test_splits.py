"""Training reads the training split, evaluation the test split: never the same rows, for every task's default path."""

import sys
import types
import warnings

import pytest
from toy import ToyTask, tiny_lm, toy_config

from dopsd.bundled import BUNDLED_TASKS
from dopsd.cli.evaluate import task_examples
from dopsd.errors import DopsdError
from dopsd.presets import cpu_preset
from dopsd.sampling.padding import group_by_length, micro_batches
from dopsd.tasks import TASKS, get_task, load_examples
from dopsd.trainers import DOPSDTrainer


def hub_row(task: str, split: str, i: int) -> dict:
    question = f"{split} question {i}: what is {i} + 1?"
    if task == "gsm8k":
        return {"question": question, "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"}
    return {"problem": question, "solution": f"\\boxed{{{i + 1}}}", "answer": str(i + 1)}


@pytest.fixture
def fake_hub(monkeypatch):
    """A ``datasets`` module whose every split holds rows that say which split they came from."""
    calls = []

    def load_dataset(*names, split):
        calls.append((names, split))
        task = "gsm8k" if names[0] == "openai/gsm8k" else "math500"
        return [hub_row(task, split, i) for i in range(5)]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr("dopsd.hub.hub_unreachable", lambda: None)  # the fake hub is always there
    return calls


@pytest.mark.parametrize("name", sorted(TASKS))
def test_the_trainer_reads_the_training_split_and_evaluates_on_the_test_split(name, fake_hub, tmp_path):
    config = toy_config(tmp_path, task=name, train_data=None, eval_data=None, use_lora=False)
    task = get_task(name)
    if "train" not in task.hub_splits or not task.hub_dataset:
        with pytest.raises(DopsdError, match="pass a local data file of training examples"):
            DOPSDTrainer(model=tiny_lm(), config=config)
        assert all(split != "train" for _, split in fake_hub)  # nothing else was read in the training split's place
        return
    trainer = DOPSDTrainer(model=tiny_lm(), config=config)
    assert [split for _, split in fake_hub] == ["train", "test"]
    assert all(e.prompt.startswith("train ") for e in trainer.train_examples)
    assert all(e.prompt.startswith("test ") for e in trainer.eval_examples)


def test_evaluation_without_a_file_reads_the_test_split(fake_hub):
    args = types.SimpleNamespace(task="gsm8k", data=None, limit=2)
    _, examples = task_examples(args)
    assert fake_hub[-1][1] == "test" and [e.prompt[:6] for e in examples] == ["test q", "test q"]


def test_loading_from_the_hub_needs_a_named_split(fake_hub):
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        load_examples(get_task("gsm8k"), None, "validation")
    with pytest.raises(ValueError, match="name a hub split"):
        get_task("gsm8k").load()
    assert fake_hub == []


@pytest.mark.parametrize("name", sorted(BUNDLED_TASKS))
def test_the_bundled_presets_train_and_evaluate_on_disjoint_files(name):
    preset = cpu_preset(name)
    task = get_task(name)
    train = load_examples(task, preset["train_data"], "train")
    held_out = load_examples(task, preset["eval_data"], "test")
    assert not {task.question_text(e) for e in train} & {task.question_text(e) for e in held_out}


def test_a_held_out_set_that_overlaps_the_training_set_is_warned_about(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(tmp_path, use_lora=False)).train()  # one file
    assert any("6 of the 6 held-out prompts are also training prompts" in str(w.message) for w in caught)


def test_grouping_by_length_and_micro_batches():
    assert group_by_length([3, 5, 3, 3, 5, 2]) == [[0, 2, 3], [1, 4], [5]]
    assert group_by_length([(1, 2), (1, 3), (1, 2)]) == [[0, 2], [1]]
    assert micro_batches([[0, 2, 3], [1, 4], [5]], 2) == [[0, 2], [3], [1, 4], [5]]
    assert micro_batches([list(range(5))], 5) == [[0, 1, 2, 3, 4]]


def test_a_validation_split_is_held_out_of_training_and_the_same_for_every_seed(tmp_path):
    from dopsd.tasks.loading import split_validation

    examples = list(range(20))
    train, validation = split_validation(examples, 5)
    assert len(validation) == 5 and sorted(train + validation) == examples and not set(train) & set(validation)
    assert split_validation(examples, 5) == (train, validation)  # a fixed choice, not the run's seed
    runs = [DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(tmp_path / str(seed), seed=seed,
                                                                         validation_size=2)) for seed in (0, 1)]
    for trainer in runs:
        assert len(trainer.eval_examples) == 2 and len(trainer.train_examples) == 4
        assert not {e.prompt for e in trainer.eval_examples} & {e.prompt for e in trainer.train_examples}
    assert [e.prompt for e in runs[0].eval_examples] == [e.prompt for e in runs[1].eval_examples]
    with pytest.raises(DopsdError, match="validation_size 6 must be between 1 and 5"):
        DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(tmp_path / "big", validation_size=6))
