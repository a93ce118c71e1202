"""One subcommand per registered training method (``dopsd train`` for d-OPSD, ``dopsd grpo``, ``dopsd sft``...):
every field of the method's config is a flag with its meaning and default, grouped; ``--config FILE.yaml`` sets
fields first and flags override them."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import types
import typing

from dopsd.cli.parser import CommandParser
from dopsd.config import GROUPS, CommandLineText, field_help, load_config
from dopsd.errors import DopsdError
from dopsd.methods import METHODS, Method
from dopsd.presets import bundled_preset, preset_note

GROUP_TITLES = {
    "model": "model", "data": "data", "rollout": "rollout (how responses are sampled)", "method": "method",
    "optimization": "optimisation", "evaluation": "evaluation", "run": "run (output, checkpoints, logging)",
}


def register(subparsers) -> None:
    """Cheap stubs: a method's fields (which import its trainer) are read only when its subcommand runs."""
    for method in METHODS.values():
        stub = subparsers.add_parser(method.command, help=method.summary, add_help=False)
        stub.set_defaults(run=functools.partial(run_method, method), accepts_overrides=True)


def method_parser(method: Method) -> argparse.ArgumentParser:
    config_class = method.config_class()
    parser = CommandParser(
        prog=f"dopsd {method.command}",
        usage=f"dopsd {method.command} [--config FILE.yaml] [--field value ...]",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=40, width=120),
        description=f"{method.description} Every {config_class.__name__} field can be set in a YAML file (--config) "
        f"and overridden as --field value (--field-name or --field_name; null for none; lists comma-separated). "
        f"{preset_note(method)}",
    )
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help=f"YAML file of {config_class.__name__} fields, read before the flags")
    groups = {name: parser.add_argument_group(GROUP_TITLES[name]) for name in GROUPS}
    for spec in dataclasses.fields(config_class):
        text, group = field_help(config_class, spec.name)
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        hint = typing.get_type_hints(config_class)[spec.name]
        # A bare boolean flag means true: --use-lora is --use-lora true.
        flag = dict(nargs="?", const=CommandLineText("true")) if hint is bool else {}
        groups[group].add_argument(f"--{spec.name.replace('_', '-')}", dest=spec.name, type=CommandLineText,
                                   default=argparse.SUPPRESS, metavar=metavar(hint),
                                   help=f"(default {yaml_text(default)}) {text}", **flag)
    return parser


def metavar(hint) -> str:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    names = {bool: "BOOL", int: "N", float: "X", str: "TEXT", type(None): "null"}
    return "|".join(names.get(option, "A,B") for option in options)


def yaml_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def parse_fields(method: Method, arguments: list[str]) -> tuple[str | None, dict]:
    """``(config file, {field: command-line text})`` from the subcommand's arguments; an unknown flag is one error
    that names the closest field."""
    parser = method_parser(method)
    parsed, unknown = parser.parse_known_args([dashed(argument) for argument in arguments])
    if unknown:
        flag = next((argument for argument in unknown if argument.startswith("-")), None)
        if flag is None:
            raise DopsdError(f"unexpected argument {unknown[0]!r}: fields are set as --field value")
        name = flag.lstrip("-").partition("=")[0]
        choices = [spec.name.replace("_", "-") for spec in dataclasses.fields(method.config_class())] + ["config"]
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
        hint = f"did you mean --{close[0]}? " if close else ""
        raise DopsdError(f"unknown option {flag.partition('=')[0]}: {hint}(dopsd {method.command} --help lists every "
                         "field)")
    values = vars(parsed)
    return values.pop("config"), values


def dashed(argument: str) -> str:
    """``--field_name=value`` as ``--field-name=value``; anything else unchanged."""
    if not argument.startswith("--"):
        return argument
    name, equals, value = argument[2:].partition("=")
    return f"--{name.replace('_', '-')}{equals}{value}"


def with_bundled_preset(method: Method, config_file: str | None, values: dict) -> dict:
    """The command line's values, on top of the bundled model's CPU preset when neither a config file nor --model
    names what to train."""
    if config_file is None and "model" not in values:
        values = {**bundled_preset(method, values), **values}
    return values


def run_method(method: Method, args: argparse.Namespace) -> int:
    config_file, values = parse_fields(method, args.overrides)
    trainer_class = method.trainer_class()
    config = load_config(trainer_class.config_class, config_file, with_bundled_preset(method, config_file, values))
    trainer = trainer_class(config=config)
    try:
        summary = trainer.train()
    except KeyboardInterrupt as interrupt:
        interrupt.advice = interrupted_advice(trainer.output_dir)  # printed by dopsd.cli.main
        raise
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None:
        # leaves a multi-process run's group cleanly: exiting with gloo/NCCL threads alive can abort the process
        accelerator.end_training()
        if not accelerator.is_main_process:
            return 0  # the run's summary is printed once, by its main process
    print(json.dumps(summary))
    # a trainer may close with its own paragraph (the image methods report fidelity, not accuracy)
    print(getattr(trainer_class, "describe", describe)(method.label, summary))
    return 0


def interrupted_advice(output_dir) -> str:
    """What to run after Ctrl-C: continue from the last checkpoint, or, before the first, start over."""
    from dopsd.trainers import checkpoint as ckpt

    latest = ckpt.latest_checkpoint(output_dir)
    if latest is not None:
        return f"continue the run from {latest.name} with the same command and --resume-from latest"
    if ckpt.run_files(output_dir):
        return (f"no checkpoint was saved yet, so there is nothing to resume: start again with the same command and "
                f"--overwrite-output-dir (it clears what the run wrote to {output_dir})")
    return "nothing was written: run the same command again"


def describe(method: str, summary: dict) -> str:
    """The closing paragraph: accuracy before -> after, updates, time, where the output is."""
    before, after, best = summary["eval_before"], summary["eval_after"], summary["best_eval"]
    return (
        f"{method} on {summary['task']}: held-out accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f} "
        f"(mean score {before['mean_score']:.3f} -> {after['mean_score']:.3f}, {after['n']} held-out examples) "
        f"after {summary['updates']} updates in {summary['wall_seconds'] / 60:.1f} min; best {best['accuracy']:.3f} "
        f"at update {best['update']}. Output in {summary['output_dir']} (summary.json, metrics.jsonl, "
        f"training.png, checkpoints)."
    )
