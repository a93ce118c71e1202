"""``dopsd lm-eval ARGS``: lm-evaluation-harness's command line with ``--model dopsd`` registered (``dopsd.lmeval``)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lm-eval", help="run lm-evaluation-harness with dopsd's model (--model dopsd; pip install -e \".[eval]\")",
        description="lm-evaluation-harness's own command line, with `--model dopsd` available: e.g. dopsd lm-eval "
        "--model dopsd --model_args pretrained=PATH,gen_length=256,block_length=32 --tasks gsm8k --batch_size 16. "
        "model_args: pretrained, base, trust_remote_code, dtype, block_size, mask_token_id, gen_length, "
        "block_length, steps, temperature, remasking, threshold, cache, mc_num, mc_batch_size, seed (docs/lm_eval.md).")
    parser.set_defaults(run=run, accepts_overrides=True)  # every other argument is lm-eval's (lm_eval --help)


def run(args: argparse.Namespace) -> int:
    from dopsd.errors import DopsdError

    try:
        from dopsd.lmeval import main
    except ImportError as error:
        raise DopsdError("dopsd lm-eval needs lm-eval: pip install -e \".[eval]\"") from error
    return main(args.overrides)
