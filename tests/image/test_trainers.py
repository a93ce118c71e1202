"""D-OPSD for images and its flow-matching baseline: who sees what, the EMA teacher, updates, resume, refusals."""

import json

import pytest
import torch
from image_doubles import small_config, tiny_classifier, tiny_model

from dopsd.errors import DopsdError
from dopsd.image.config import ImageFMConfig, ImageOPSDConfig
from dopsd.image.fm import ImageFMTrainer
from dopsd.image.opsd import ImageOPSDTrainer


def opsd(tmp_path, **changes):
    return ImageOPSDTrainer(config=small_config(ImageOPSDConfig, tmp_path, **changes), model=tiny_model(),
                            classifier=tiny_classifier())


def record_calls(module, calls: list, name: str):
    original = module.forward

    def forward(sample, timestep, prompt_ids, context=None, context_mask=None):
        calls.append({"who": name, "context": context, "mask": context_mask, "prompts": prompt_ids.clone(),
                      "grad": torch.is_grad_enabled()})
        return original(sample, timestep, prompt_ids, context=context, context_mask=context_mask)

    module.forward = forward


def record_batches(trainer) -> list:
    batches, original = [], trainer.next_batch

    def next_batch():
        batches.append(original())
        return batches[-1]

    trainer.next_batch = next_batch
    return batches


@pytest.mark.parametrize("retain_context", [False, True])
def test_the_teacher_sees_the_target_image_and_the_student_does_not(retain_context, tmp_path):
    trainer = opsd(tmp_path, batch_size=8, retain_share=0.5, retain_context=retain_context)
    calls = []
    record_calls(trainer.model, calls, "student")
    record_calls(trainer.teacher, calls, "teacher")
    batches = record_batches(trainer)
    trainer.step()
    [(images, prompts, is_target)] = batches
    assert 0 < int(is_target.sum()) < 8  # both kinds of rows in this batch
    teacher = [c for c in calls if c["who"] == "teacher"]
    student = [c for c in calls if c["who"] == "student"]
    assert len(teacher) == 1 and len(student) == 4 + 1  # 4 roll-out steps, then the loss pass
    steps = 4
    assert torch.equal(teacher[0]["context"], images.repeat(steps, 1, 1, 1)) and not teacher[0]["grad"]
    seen = torch.ones(8, dtype=torch.bool) if retain_context else is_target
    assert torch.equal(teacher[0]["mask"], seen.repeat(steps))
    # the target rows' images are target images of the concept, which the student never gets
    from dopsd.image.data import STYLES, VOCAB

    for image in images[is_target]:
        assert any(torch.equal(image, target) for target in trainer.targets.images)
    assert all(call["context"] is None for call in student)
    assert student[-1]["grad"] and not any(call["grad"] for call in student[:-1])  # roll-outs without gradient
    # both read the same text: the concept's prompt on target rows, a base-style prompt on the others
    assert torch.equal(teacher[0]["prompts"], student[-1]["prompts"]) and torch.equal(student[0]["prompts"], prompts)
    assert {VOCAB[int(word)] for word in prompts[is_target, 2]} == {"framed"}
    assert all(VOCAB[int(word)] in (*STYLES, "<pad>") and VOCAB[int(word)] != "framed"
               for word in prompts[~is_target, 2])


def test_the_teacher_is_an_ema_of_the_student_and_gets_no_gradient(tmp_path):
    trainer = opsd(tmp_path, ema_decay=0.75)
    before = [p.detach().clone() for p in trainer.teacher.parameters()]
    trainer.step()
    for teacher, student, old in zip(trainer.teacher.parameters(), trainer.model.parameters(), before):
        assert not teacher.requires_grad and teacher.grad is None
        torch.testing.assert_close(teacher, 0.75 * old + 0.25 * student.detach())
    frozen = opsd(tmp_path / "frozen", ema_decay=1.0)
    initial = [p.detach().clone() for p in frozen.teacher.parameters()]
    frozen.step()
    assert all(torch.equal(p, q) for p, q in zip(frozen.teacher.parameters(), initial))


@pytest.mark.parametrize("trainer_class, config_class", [(ImageOPSDTrainer, ImageOPSDConfig),
                                                         (ImageFMTrainer, ImageFMConfig)])
def test_an_update_changes_the_student(trainer_class, config_class, tmp_path):
    trainer = trainer_class(config=small_config(config_class, tmp_path), model=tiny_model(),
                            classifier=tiny_classifier())
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.step()
    assert metrics["loss"] > 0 and trainer.update == 1
    assert any(not torch.equal(p, q) for p, q in zip(trainer.model.parameters(), before))


def test_fm_trains_on_the_target_images_from_the_text_alone(tmp_path):
    trainer = ImageFMTrainer(config=small_config(ImageFMConfig, tmp_path), model=tiny_model(),
                             classifier=tiny_classifier())
    calls = []
    record_calls(trainer.model, calls, "student")
    batches = record_batches(trainer)
    trainer.step()
    assert len(calls) == 1 and calls[0]["context"] is None and calls[0]["grad"]
    assert torch.equal(calls[0]["prompts"], batches[0][1])


@pytest.mark.slow
@pytest.mark.parametrize("trainer_class, config_class", [(ImageOPSDTrainer, ImageOPSDConfig),
                                                         (ImageFMTrainer, ImageFMConfig)])
def test_resume_is_bit_exact(trainer_class, config_class, tmp_path):
    def make(folder, **changes):
        values = dict(output_dir=str(tmp_path / folder), max_updates=4, save_every=2, eval_every=2)
        config = small_config(config_class, tmp_path, **{**values, **changes})
        return trainer_class(config=config, model=tiny_model(), classifier=tiny_classifier())

    straight = make("straight")
    straight.train()
    interrupted = make("resumed", max_updates=2)
    interrupted.train()
    resumed = make("resumed", resume_from="latest")
    summary = resumed.train()
    assert summary["updates"] == 4
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    if trainer_class is ImageOPSDTrainer:
        for p, q in zip(straight.teacher.parameters(), resumed.teacher.parameters()):
            assert torch.equal(p, q)

    def rows(folder):
        return [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
                for line in (tmp_path / folder / "metrics.jsonl").read_text().splitlines()]

    assert rows("straight") == rows("resumed")
    assert summary["after"] == json.loads((tmp_path / "straight" / "summary.json").read_text())["after"]
    for name in ("samples.png", "training.png", "checkpoint-4/checkpoint.json", "checkpoint-4/teacher"
                 if trainer_class is ImageOPSDTrainer else "checkpoint-4/model"):
        assert (tmp_path / "resumed" / name).exists()


@pytest.mark.slow
def test_an_earlier_run_is_refused_and_a_bad_value_is_one_line(tmp_path):
    opsd(tmp_path).train()
    with pytest.raises(DopsdError, match="already holds a run"):
        opsd(tmp_path)
    with pytest.raises(DopsdError, match="'concept' = 'wavy'"):
        small_config(ImageOPSDConfig, tmp_path, concept="wavy")
    with pytest.raises(DopsdError, match="'ema_decay' = 1.5"):
        small_config(ImageOPSDConfig, tmp_path, ema_decay=1.5)
    with pytest.raises(DopsdError, match="is a file"):
        (tmp_path / "file").write_text("x")
        opsd(tmp_path, output_dir=str(tmp_path / "file"))
