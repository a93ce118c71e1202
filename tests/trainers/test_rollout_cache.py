"""rollout_cache: d-OPSD's rollouts decode with the block KV cache; the loss passes still see whole sequences."""

from toy import ToyTask, tiny_lm, toy_config

from dopsd.trainers import DOPSDTrainer


def test_rollouts_use_the_cache_and_loss_passes_stay_full(tmp_path):
    config = toy_config(tmp_path, rollout_cache="dual", prompts_per_rollout=6, correct_only=False)
    trainer = DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=config)
    lengths = []
    trainer.base_lm.model.get_base_model().register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    trainer.rollout()
    assert 4 in lengths  # a block's later steps ran its 4 tokens only
    assert max(lengths) > 12  # its first step ran prompt and response
    first, *rest = trainer.pending
    trainer.chunk_backward(first)  # its first pass runs the one-off selected-logits probe on a short input
    lengths.clear()
    for chunk in rest:
        trainer.chunk_backward(chunk)
    assert lengths and min(lengths) > 12  # teacher and student passes: prompt plus the whole response
