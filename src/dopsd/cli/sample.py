"""``dopsd sample``: print a completion, or the whole denoising trajectory."""

from __future__ import annotations

import argparse

from dopsd.cli.options import add_model_options, add_sampler_options, apply_model_defaults, load_model, sampler_config

MASK_GLYPH = "░"


def register(subparsers) -> None:
    parser = subparsers.add_parser("sample", help="sample a completion from a diffusion LM")
    add_model_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="prompt text ('-' reads it from standard input)")
    source.add_argument("--prompt-file", help="a file holding the prompt text ('-': standard input)")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    add_sampler_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trajectory", action="store_true", help="print every denoising step")
    parser.set_defaults(run=run)


def prompt_text(args: argparse.Namespace) -> str:
    """The prompt from --prompt, --prompt-file or standard input; an empty one is refused."""
    import sys

    from dopsd.errors import DopsdError

    source = args.prompt_file if args.prompt_file is not None else args.prompt
    if source == "-":
        text = sys.stdin.read()
    elif args.prompt_file is not None:
        try:
            with open(args.prompt_file, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            raise DopsdError(f"cannot read the prompt file {args.prompt_file}: {error}") from error
    else:
        text = args.prompt
    if not text.strip():
        raise DopsdError("the prompt is empty: give some text with --prompt or --prompt-file")
    return text


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

    text = prompt_text(args)
    apply_model_defaults(args)
    lm = load_model(args)
    import sys

    config = sampler_config(args, lm=lm)
    sampler = BlockDiffusionSampler(lm, config)
    trajectory = sampler.sample([encode_prompt(lm, text, args.chat)], seed=args.seed)[0]
    print(f"attention: {lm.layout.describe()}; decoded {config.gen_length} tokens in blocks of {config.block_length}",
          file=sys.stderr)
    if args.trajectory:
        width = len(str(trajectory.num_steps))
        for step in range(trajectory.num_steps):
            print(f"step {step + 1:>{width}}/{trajectory.num_steps} | {format_step(lm, trajectory, step)}")
        print(f"(recorded steps: {trajectory.num_recorded_steps} of {trajectory.num_steps})")
    print(lm.decode(trajectory.tokens))
    return 0
