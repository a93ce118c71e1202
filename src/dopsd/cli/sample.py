"""``dopsd sample``: print a completion, or the whole denoising trajectory."""

from __future__ import annotations

import argparse

from dopsd.cli.options import add_model_options, add_sampler_options, load_model, sampler_config

MASK_GLYPH = "░"


def register(subparsers) -> None:
    parser = subparsers.add_parser("sample", help="sample a completion from a diffusion LM")
    add_model_options(parser)
    parser.add_argument("--prompt", required=True, help="prompt text")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    add_sampler_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trajectory", action="store_true", help="print every denoising step")
    parser.set_defaults(run=run)


def encode_prompt(lm, text: str, chat: bool) -> list[int]:
    tokenizer = lm.tokenizer
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            from dopsd.errors import DopsdError

            raise DopsdError("--chat: this tokenizer has no chat template")
        text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(text)["input_ids"]


def format_step(lm, trajectory, step: int) -> str:
    """The response after ``step``: masks as ``░``, tokens revealed at this step in brackets."""
    state = trajectory.state(step + 1)
    fresh = set(trajectory.revealed_at(step).tolist())
    pieces = []
    for position, token in enumerate(state.tolist()):
        if token == trajectory.mask_id:
            pieces.append(MASK_GLYPH)
            continue
        text = lm.tokenizer.decode([token]).replace("\n", "\\n")
        pieces.append(f"[{text}]" if position in fresh else text)
    return "".join(pieces)


def run(args: argparse.Namespace) -> int:
    from dopsd.sampling import BlockDiffusionSampler

    lm = load_model(args)
    sampler = BlockDiffusionSampler(lm, sampler_config(args))
    trajectory = sampler.sample([encode_prompt(lm, args.prompt, args.chat)], seed=args.seed)[0]
    if args.trajectory:
        width = len(str(trajectory.num_steps))
        for step in range(trajectory.num_steps):
            print(f"step {step + 1:>{width}}/{trajectory.num_steps} | {format_step(lm, trajectory, step)}")
        print(f"(recorded steps: {trajectory.num_recorded_steps} of {trajectory.num_steps})")
    print(lm.decode(trajectory.tokens))
    return 0
