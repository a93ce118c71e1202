import pytest

from dopsd import DopsdError
from dopsd.config import load_config, parse_overrides
from dopsd.trainers import DOPSDConfig


def test_defaults_are_the_papers():
    config = DOPSDConfig()
    assert (config.passk, config.passk_temperature, config.teacher_retain_ratio) == (8, 0.9, 0.25)
    assert (config.divergence, config.top_k_loss, config.clip, config.kt_selection) == (
        "reverse_kl", 20, 0.05, "teacher")
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (128, 64, 0.05)
    assert (config.learning_rate, config.weight_decay, config.max_grad_norm) == (5e-6, 0.1, 0.2)
    assert (config.gen_length, config.block_length, config.updates_per_rollout) == (256, 32, 4)
    assert config.correct_only and config.teacher == "fixed"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("task: sudoku\npassk: 4\nclip: null\nlearning_rate: 1\n")
    config = load_config(DOPSDConfig, path,
                         ["--passk", "2", "--teacher-retain-ratio=0.5", "--lora-target-modules", "a,b"])
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
    assert (config.mixed_precision, config.clip, config.use_lora, config.steps, config.model) == (
        "no", None, False, 12, "123")
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


@pytest.mark.parametrize("source", ["flag", "yaml", "dataclass"])
@pytest.mark.parametrize("field, value", [("learning_rate", "inf"), ("temperature", "nan"), ("clip", "-inf"),
                                          ("max_grad_norm", "nan")])
def test_non_finite_numbers_are_refused_wherever_they_come_from(tmp_path, source, field, value):
    """argparse's and YAML's float readers both take inf and nan; no field of any config does."""
    with pytest.raises(DopsdError, match=f"'{field}' = .* must be a finite number"):
        if source == "flag":
            load_config(DOPSDConfig, None, [f"--{field.replace('_', '-')}", value])
        elif source == "yaml":
            path = tmp_path / "c.yaml"
            path.write_text(f"{field}: {dict(inf='.inf', nan='.nan')[value.lstrip('-')]}\n")
            load_config(DOPSDConfig, path)
        else:
            DOPSDConfig(**{field: float(value)})


def test_every_method_and_image_config_refuses_non_finite_floats():
    from dopsd.image.config import ImageOPSDConfig
    from dopsd.methods import METHODS

    for method in METHODS.values():
        config_class = method.config_class()
        with pytest.raises(DopsdError, match="'learning_rate' = nan must be a finite number"):
            config_class(learning_rate=float("nan"))
    with pytest.raises(DopsdError, match="'ema_decay' = inf"):
        ImageOPSDConfig(ema_decay=float("inf"))


def test_a_yaml_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\ntask: sudoku\nseed: 2\n")
    with pytest.raises(DopsdError, match="c.yaml:3: not valid YAML \\(key 'seed' appears twice \\(first on line 1\\)"):
        load_config(DOPSDConfig, path)
    path.write_text("seed: 1\nlora_target_modules: [a, b]\n")  # lists, and keys unique: as before
    assert load_config(DOPSDConfig, path).seed == 1
