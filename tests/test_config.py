import pytest

from dopsd import DopsdError
from dopsd.config import load_config, parse_overrides
from dopsd.trainers import DOPSDConfig


def test_defaults_are_the_papers():
    config = DOPSDConfig()
    assert (config.passk, config.passk_temperature, config.teacher_retain_ratio) == (8, 0.9, 0.25)
    assert (config.divergence, config.top_k_loss, config.clip, config.kt_selection) == ("reverse_kl", 20, 0.05, "teacher")
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (128, 64, 0.05)
    assert (config.learning_rate, config.weight_decay, config.max_grad_norm) == (5e-6, 0.1, 0.2)
    assert (config.gen_length, config.block_length, config.updates_per_rollout) == (256, 32, 4)
    assert config.correct_only and config.teacher == "fixed"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: sudoku\npassk: 4\nclip: null\nlearning_rate: 1\n")
    config = load_config(DOPSDConfig, path, ["--passk", "2", "--teacher-retain-ratio=0.5", "--lora-target-modules", "a,b"])
    assert (config.task, config.passk, config.teacher_retain_ratio, config.clip) == ("sudoku", 2, 0.5, None)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.lora_target_modules == ["a", "b"]


@pytest.mark.parametrize("text, message", [
    ("passk: [\n", "c.yaml:2: not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("passk: many\n", "'passk'"),
    ("unknown_field: 1\n", "unknown config field"),
    ("teacher_retain_ratio: 1.5\n", "'teacher_retain_ratio'"),
])
def test_bad_config_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(DopsdError, match=message):
        load_config(DOPSDConfig, path)


def test_override_syntax_errors():
    with pytest.raises(DopsdError, match="--passk needs a value"):
        parse_overrides(["--passk"])
    with pytest.raises(DopsdError, match="unexpected argument"):
        parse_overrides(["passk", "3"])


def test_command_line_text_is_read_by_the_field_type():
    config = load_config(DOPSDConfig, None, ["--mixed-precision", "no", "--clip", "null", "--use-lora", "no",
                                             "--steps", "12", "--model", "123"])
    assert (config.mixed_precision, config.clip, config.use_lora, config.steps, config.model) == ("no", None, False, 12, "123")
    with pytest.raises(DopsdError, match="'passk'"):
        load_config(DOPSDConfig, None, ["--passk", "many"])


def test_shipped_opdlm_recipes_load():
    from pathlib import Path

    from dopsd.trainers import OPDLMConfig

    folder = Path(__file__).resolve().parents[1] / "configs"
    block = load_config(OPDLMConfig, folder / "opdlm_smollm2.yaml", {})
    assert (block.attention, block.block_length, block.threshold, block.temperature) == ("block", 4, 0.9, 1.0)
    assert (block.learning_rate, block.lr_scheduler, block.warmup_steps, block.one_state_per_block) == (
        1e-5, "cosine", 5, True)
    full = load_config(OPDLMConfig, folder / "opdlm_smollm2_full.yaml", {})
    assert (full.attention, full.block_length, full.threshold, full.temperature) == ("full", 32, None, 0.0)


def test_shipped_gpu_configs_load_with_the_paper_settings():
    from pathlib import Path

    from dopsd.trainers import DOPSDConfig

    folder = Path(__file__).resolve().parents[1] / "configs"
    for name in ("llada_gsm8k.yaml", "dream_gsm8k.yaml"):
        config = load_config(DOPSDConfig, folder / name, {})
        assert config.trust_remote_code and config.task == "gsm8k"
        assert (config.lora_r, config.lora_alpha, config.learning_rate, config.max_grad_norm) == (128, 64, 5e-6, 0.2)
        assert config.sampler_config().total_steps == 128 and config.teacher_retain_ratio == 0.25
