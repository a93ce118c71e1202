"""``dopsd train`` (d-OPSD), ``dopsd sft`` (masked-diffusion SFT) and ``dopsd grpo`` (diffu-GRPO): any config field
from YAML or ``--field value``."""

from __future__ import annotations

import argparse
import json

from dopsd.config import load_config, parse_overrides


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train with d-OPSD (no arguments: the bundled Sudoku model on this CPU)",
        description="Run d-OPSD. Any DOPSDConfig field can come from a YAML file and be overridden as --field value "
        "(e.g. --model PATH --task sudoku --max-updates 50). Without --config or --model, the bundled base model of "
        "--task (sudoku or countdown) is trained with settings sized for a laptop CPU.",
    )
    train.add_argument("--config", default=None, help="YAML file of DOPSDConfig fields")
    train.set_defaults(run=run_train, accepts_overrides=True)
    sft = subparsers.add_parser(
        "sft",
        help="masked-diffusion supervised fine-tuning (LLaDA's objective)",
        description="Run masked-diffusion SFT; any SFTConfig field as --field value. Without --config or --model, "
        "the bundled base model of --task continues SFT on its training set with settings sized for a laptop CPU.",
    )
    sft.add_argument("--config", default=None, help="YAML file of SFTConfig fields")
    sft.set_defaults(run=run_sft, accepts_overrides=True)
    grpo = subparsers.add_parser(
        "grpo",
        help="train with diffu-GRPO, the RLVR baseline (no arguments: the bundled Sudoku model on this CPU)",
        description="Run diffu-GRPO (d1). Any GRPOConfig field can come from a YAML file and be overridden as "
        "--field value. Without --config or --model, the bundled base model of --task is trained with settings "
        "sized for a laptop CPU.",
    )
    grpo.add_argument("--config", default=None, help="YAML file of GRPOConfig fields")
    grpo.set_defaults(run=run_grpo, accepts_overrides=True)


def with_bundled_preset(args: argparse.Namespace, method: str) -> dict:
    """The command line's overrides, on top of the bundled model's CPU preset when neither --config nor --model
    names what to train."""
    overrides = parse_overrides(args.overrides)
    if args.config is None and "model" not in overrides:
        from dopsd.bundled import cpu_preset

        overrides = {**cpu_preset(str(overrides.get("task", "sudoku")), method), **overrides}
    return overrides


def run_train(args: argparse.Namespace) -> int:
    from dopsd.trainers import DOPSDConfig, DOPSDTrainer

    overrides = with_bundled_preset(args, "dopsd")
    summary = DOPSDTrainer(config=load_config(DOPSDConfig, args.config, overrides)).train()
    print(json.dumps(summary))
    print(describe("d-OPSD", summary))
    return 0


def run_sft(args: argparse.Namespace) -> int:
    from dopsd.trainers import SFTConfig, SFTTrainer

    overrides = with_bundled_preset(args, "sft")
    summary = SFTTrainer(config=load_config(SFTConfig, args.config, overrides)).train()
    print(json.dumps(summary))
    print(describe("SFT", summary))
    return 0


def run_grpo(args: argparse.Namespace) -> int:
    from dopsd.trainers import GRPOConfig, GRPOTrainer

    overrides = with_bundled_preset(args, "grpo")
    summary = GRPOTrainer(config=load_config(GRPOConfig, args.config, overrides)).train()
    print(json.dumps(summary))
    print(describe("diffu-GRPO", summary))
    return 0


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
