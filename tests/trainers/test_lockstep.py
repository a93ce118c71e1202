"""When forward passes run in step across processes, and what sharded weights refuse (the 2-process runs are in
test_distributed.py)."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from accelerate.commands.config.config_args import ClusterConfig
from accelerate.utils import DistributedType
from toy import ToyTask, tiny_lm, toy_config

import dopsd.trainers.base
from dopsd.errors import DopsdError
from dopsd.trainers import DOPSDTrainer
from dopsd.trainers.checkpoint import check_resumable
from dopsd.trainers.lockstep import lockstep_wanted, prepare_deepspeed, weights_sharded

CONFIGS = Path(__file__).parents[2] / "configs" / "accelerate"


def accelerator(kind, processes=2, zero_stage=None):
    plugin = SimpleNamespace(zero_stage=zero_stage)
    return SimpleNamespace(distributed_type=kind, num_processes=processes,
                           state=SimpleNamespace(deepspeed_plugin=plugin))


@pytest.mark.parametrize("kind, zero_stage, sharded", [
    (DistributedType.MULTI_GPU, None, False), (DistributedType.MULTI_CPU, None, False),
    (DistributedType.FSDP, None, True),
    (DistributedType.DEEPSPEED, 2, False), (DistributedType.DEEPSPEED, 3, True)])
def test_lockstep_auto_is_on_exactly_when_weights_are_sharded(kind, zero_stage, sharded):
    setup = accelerator(kind, zero_stage=zero_stage)
    assert weights_sharded(setup) is sharded
    assert lockstep_wanted("auto", setup) is sharded
    assert lockstep_wanted("on", setup) is True
    assert lockstep_wanted("on", accelerator(kind, processes=1, zero_stage=zero_stage)) is False  # nobody to wait on
    if sharded:
        with pytest.raises(DopsdError, match="lockstep off cannot work with sharded weights"):
            lockstep_wanted("off", setup)
    else:
        assert lockstep_wanted("off", setup) is False


def test_an_unknown_lockstep_setting_is_one_error(tmp_path):
    with pytest.raises(DopsdError, match="lockstep.*must be auto, on or off"):
        toy_config(tmp_path, lockstep="sometimes")


def test_a_frozen_full_copy_is_refused_when_weights_are_sharded(tmp_path, monkeypatch):
    monkeypatch.setattr(dopsd.trainers.base, "weights_sharded", lambda accelerator: True)
    with pytest.raises(DopsdError, match="under FSDP train LoRA"):
        DOPSDTrainer(model=tiny_lm(), task=ToyTask(), config=toy_config(tmp_path, use_lora=False))


@pytest.mark.parametrize("name, kind, check", [
    ("fsdp2.yaml", DistributedType.FSDP, lambda c: c.fsdp_config["fsdp_version"] == 2),
    ("zero2.yaml", DistributedType.DEEPSPEED, lambda c: c.deepspeed_config["zero_stage"] == 2
     and c.deepspeed_config["gradient_clipping"] == 0.2)])
def test_the_shipped_accelerate_configs_parse(name, kind, check):
    config = ClusterConfig.from_yaml_file(str(CONFIGS / name))
    assert config.distributed_type == kind and check(config)


def test_deepspeed_gets_a_micro_batch_size_and_zero_3_is_refused():
    """accelerate leaves train_micro_batch_size_per_gpu "auto" without a dataloader, and prepare() then fails."""
    setup = accelerator(DistributedType.DEEPSPEED, zero_stage=2)
    setup.state.deepspeed_plugin.deepspeed_config = {"train_micro_batch_size_per_gpu": "auto"}
    prepare_deepspeed(setup)
    assert setup.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == 1
    with pytest.raises(DopsdError, match="ZeRO-3 is not supported.*use FSDP2"):
        prepare_deepspeed(accelerator(DistributedType.DEEPSPEED, zero_stage=3))
    prepare_deepspeed(accelerator(DistributedType.FSDP))  # nothing to do elsewhere


def test_a_format_2_checkpoint_is_refused_with_sharded_weights(tmp_path):
    (tmp_path / "checkpoint.json").write_text(json.dumps(
        {"format": 2, "trainer": "DOPSDTrainer", "update": 2, "num_processes": 2}))
    check_resumable(tmp_path, "DOPSDTrainer", 2)  # replicated weights: resumes
    with pytest.raises(DopsdError, match="format 2 .* resume it under DDP or on one process"):
        check_resumable(tmp_path, "DOPSDTrainer", 2, sharded=True)
