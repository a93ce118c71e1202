"""The method registry and the command line it builds: every config field a flag with its default and meaning."""

import dataclasses
import json

import pytest

from dopsd.cli import main
from dopsd.cli.train import parse_fields
from dopsd.config import GROUPS, field_help, option
from dopsd.methods import METHODS, Method
from dopsd.presets import METHOD_PRESETS, SHARED_PRESET, TASK_PRESETS, bundled_preset, cpu_preset
from dopsd.trainers import DOPSDConfig, GRPOConfig, GRPOTrainer, SFTConfig, TrainingConfig


def help_text(capsys, command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("method", METHODS.values(), ids=lambda m: m.name)
def test_every_field_is_documented_and_listed_in_help_with_its_default(method, capsys):
    config_class = method.config_class()
    text = help_text(capsys, method.command)
    lines = text.splitlines()
    defaults = config_class()
    for spec in dataclasses.fields(config_class):
        meaning, group = field_help(config_class, spec.name)
        assert len(meaning) >= 8 and group in GROUPS
        flag = f"--{spec.name.replace('_', '-')} "
        [line] = [line for line in lines if line.strip().startswith(flag)]
        value = getattr(defaults, spec.name)
        shown = ("null" if value is None else str(value).lower() if isinstance(value, bool)
                 else ",".join(value) if isinstance(value, list) else str(value))
        assert f"(default {shown}) {meaning[:20]}" in line


def test_the_help_of_train_and_grpo_names_the_method_fields(capsys):
    train = help_text(capsys, "train")
    for flag, default in [("--teacher-retain-ratio", "0.25"), ("--passk", "8"), ("--top-k-loss", "20"),
                          ("--updates-per-rollout", "4")]:
        assert any(line.strip().startswith(flag + " ") and f"(default {default})" in line
                   for line in train.splitlines())
    grpo = help_text(capsys, "grpo")
    for flag, default in [("--num-generations", "6"), ("--inner-updates", "12"), ("--beta", "0.04")]:
        assert any(line.strip().startswith(flag + " ") and f"(default {default})" in line for line in grpo.splitlines())
    assert "--passk " not in grpo and "--num-generations " not in train  # each method lists its own fields


def test_a_subclass_that_only_changes_a_default_keeps_the_help():
    assert GRPOConfig().output_dir == "runs/grpo" and SFTConfig().output_dir == "runs/sft"
    assert field_help(GRPOConfig, "output_dir") == field_help(TrainingConfig, "output_dir")
    assert field_help(GRPOConfig, "temperature")[0] != field_help(DOPSDConfig, "temperature")[0]  # restated: its own


def test_flags_read_by_field_type_in_either_spelling_after_the_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("passk: 4\nclip: 0.1\nuse_lora: false\n")
    config_file, values = parse_fields(METHODS["dopsd"], [
        "--config", str(path), "--teacher_retain_ratio", "0.5", "--clip=null", "--use-lora", "--lora-target-modules",
        "a,b", "--max-updates", "7"])
    from dopsd.config import load_config

    config = load_config(DOPSDConfig, config_file, values)
    assert (config.passk, config.teacher_retain_ratio, config.clip, config.use_lora) == (4, 0.5, None, True)
    assert (config.lora_target_modules, config.max_updates) == (["a", "b"], 7)


@pytest.mark.parametrize("arguments, message", [
    (["train", "--teacher-retain-ration", "0.5"], "unknown option --teacher-retain-ration: did you mean "
                                                  "--teacher-retain-ratio?"),
    (["grpo", "--num_generation=3"], "did you mean --num-generations?"),
    (["train", "--teach", "0.5"], "unknown option --teach"),  # no abbreviations: it would silently pick one field
    (["sft", "--passk", "2"], "unknown option --passk"),  # d-OPSD's field, not SFT's
    (["train", "stray"], "unexpected argument 'stray'"),
    (["train", "--passk", "many"], "'passk' = 'many' must be int"),
    (["grpo", "--beta", "-1"], "'beta' = -1.0 must be >= 0"),
    (["train", "--task", "math500", "--model", "unused"], "MATH-500 has no train split"),
])
def test_command_line_mistakes_are_one_error_line(arguments, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(arguments)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_presets_are_the_method_presets_on_top_of_the_task():
    assert set(METHOD_PRESETS) <= set(METHODS)  # a preset names a registered method
    for method in METHODS.values():
        if method.modality != "text":  # the image methods start from the bundled image generator, without a task
            assert bundled_preset(method, {})["model"].endswith("image/model")
            method.config_class()(**bundled_preset(method, {}))
            continue
        assert bundled_preset(method, {"task": "sudoku"}) == cpu_preset("sudoku", method.name)
        preset = cpu_preset("sudoku", method.name)
        expected = {**TASK_PRESETS["sudoku"], **SHARED_PRESET, **METHOD_PRESETS.get(method.name, {})}
        assert {key: preset[key] for key in expected} == expected
        method.config_class()(**preset)  # every preset is a valid config of its method


@dataclasses.dataclass
class EchoConfig(TrainingConfig):
    """A method defined in a test: one config, one trainer, one registry entry."""

    output_dir: str = "runs/echo"
    loudness: int = option(3, "how loud the echo is", "method")


class EchoTrainer:
    config_class = EchoConfig

    def __init__(self, config):
        self.config = config

    def train(self) -> dict:
        evaluation = {"update": 0, "accuracy": self.config.loudness / 10, "mean_score": 0.5, "n": 1}
        return {"task": self.config.task, "updates": 0, "eval_before": evaluation, "eval_after": evaluation,
                "best_eval": evaluation, "wall_seconds": 0.0, "output_dir": self.config.output_dir}


def test_a_new_method_is_one_registry_entry_away_from_the_command_line(monkeypatch, capsys):
    entry = Method(name="echo", command="echo", label="Echo", summary="an echo", description="Echo.",
                   trainer=f"{__name__}:EchoTrainer")
    monkeypatch.setitem(METHODS, "echo", entry)
    assert "--loudness N" in help_text(capsys, "echo")
    assert main(["echo", "--model", "m", "--task", "sudoku", "--loudness", "7"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[0])["eval_after"]["accuracy"] == 0.7
    assert lines[1].startswith("Echo on sudoku: held-out accuracy 0.700 -> 0.700")


def test_the_trainers_package_exports_every_registered_method():
    import dopsd.trainers as trainers

    assert trainers.GRPOTrainer is GRPOTrainer and GRPOTrainer.config_class is GRPOConfig
    for method in METHODS.values():
        assert getattr(trainers, method.trainer_class().__name__) is method.trainer_class()
    with pytest.raises(AttributeError):
        trainers.NoSuchTrainer


def test_a_task_can_set_the_rate_its_protocol_chose_for_one_method():
    # d-OPSD on Countdown-steps takes the rate the protocol chose there; the other methods, and d-OPSD on Sudoku,
    # keep their own presets' rates.
    assert cpu_preset("countdown-steps", "dopsd")["learning_rate"] == 5e-5
    assert cpu_preset("sudoku", "dopsd")["learning_rate"] == METHOD_PRESETS["dopsd"]["learning_rate"]
    for name in ("rft", "grpo", "sft"):
        assert cpu_preset("countdown-steps", name)["learning_rate"] == METHOD_PRESETS[name]["learning_rate"]
