"""``dopsd train [--config FILE] [--field value ...]``: run d-OPSD."""

from __future__ import annotations

import argparse
import json

from dopsd.config import load_config


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train with d-OPSD",
        description="Run d-OPSD. Any DOPSDConfig field can be set from a YAML file and overridden as --field value "
        "(e.g. --model PATH --task sudoku --max-updates 50 --teacher-retain-ratio 0.5).",
    )
    parser.add_argument("--config", default=None, help="YAML file of DOPSDConfig fields")
    parser.set_defaults(run=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from dopsd.trainers import DOPSDConfig, DOPSDTrainer

    config = load_config(DOPSDConfig, args.config, args.overrides)
    summary = DOPSDTrainer(config=config).train()
    print(describe(summary))
    print(json.dumps(summary))
    return 0


def describe(summary: dict) -> str:
    before, after, best = summary["eval_before"], summary["eval_after"], summary["best_eval"]
    return (
        f"d-OPSD on {summary['task']}: held-out accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f} "
        f"(mean score {before['mean_score']:.3f} -> {after['mean_score']:.3f}) after {summary['updates']} updates "
        f"in {summary['wall_seconds'] / 60:.1f} min; best {best['accuracy']:.3f} at update {best['update']}. "
        f"Output: {summary['output_dir']}"
    )
