"""``dopsd sample``: print a completion, or the whole denoising trajectory."""

from __future__ import annotations

import argparse

from dopsd.cli.options import add_model_options, add_sampler_options, apply_model_defaults, load_model, sampler_config

MASK_GLYPH = "░"


def task_prompt_help() -> str:
    """How each task's question is typed by hand (``--task``), for --help texts."""
    from dopsd.tasks import TASKS

    return "; ".join(f"{name}: {task.prompt_format}" for name, task in TASKS.items())


EPILOG = ("A task's prompt: --task T takes the bare question ({formats}) and writes the prompt as "
          "`dopsd eval --task T` does: the compact style for the built-in models "
          "(the question plus the task's suffix, e.g. sudoku's "
          "'PUZZLE=', countdown's 'NUMBERS>TARGET='), the instruct style (d1's system prompt and the question, through "
          "the chat template) for other models; --prompt-style picks one. Held-out questions to try: `dopsd eval "
          "--task T --data bundled:T` (a bundled model's own held-out set: bundled:sudoku, bundled:countdown, "
          "bundled:countdown-steps) or --data sample.")


def register(subparsers) -> None:
    from dopsd.tasks import PROMPT_STYLES, TASK_NAMES

    parser = subparsers.add_parser(
        "sample", help="sample a completion from a diffusion LM",
        description="Sample one completion. Without --task the prompt text goes to the model as it is; with --task "
        "it is written as that task's prompts are (see below).",
        epilog=EPILOG.format(formats=task_prompt_help()))
    add_model_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="prompt text ('-' reads it from standard input); with --task the bare "
                        "question (e.g. a sudoku puzzle's 16 digits)")
    source.add_argument("--prompt-file", help="a file holding the prompt text ('-': standard input)")
    parser.add_argument("--task", choices=TASK_NAMES, default=None,
                        help="write the prompt as this task's prompts are written (as `dopsd eval --task` does: "
                        "sudoku's trailing '=', countdown's 'NUMBERS>TARGET=', or the instruct template), from the "
                        "bare question given by --prompt; default: the prompt text as it is")
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, default=None,
                        help="with --task: compact or instruct (default: compact for built-in models, instruct "
                        "otherwise, as dopsd eval)")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template "
                        "(without --task)")
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
        text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
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


def task_question(args: argparse.Namespace, text: str):
    """The Example a --task prompt stands for, refused in one line before the model loads when it is not written
    as the task's questions are; ``None`` without --task."""
    from dopsd.errors import DopsdError
    from dopsd.tasks import get_task

    if args.task is None:
        if args.prompt_style is not None:
            raise DopsdError("--prompt-style needs --task (the style a task's prompt is written in)")
        return None
    if args.chat:
        raise DopsdError("--chat and --task: a task writes its own prompt (its instruct style goes through the chat "
                         "template); drop --chat")
    task = get_task(args.task)
    try:
        return task, task.example_from_text(text)
    except ValueError as error:
        raise DopsdError(f"--task {task.name}: {error}") from None


def task_prompt(lm, args: argparse.Namespace, text: str) -> list[int]:
    """Token ids of the prompt as ``dopsd eval --task`` writes it; the rendering said on stderr."""
    import sys

    from dopsd.tasks import default_prompt_style, encode_prompts

    task, example = args.question
    style = args.prompt_style or default_prompt_style(lm)
    shown = repr(task.render_prompt(example, style="compact")) if style == "compact" else "d1's instruct prompt"
    print(f"prompt written as task {task.name} writes it ({style} style): {shown}", file=sys.stderr)
    return encode_prompts(lm, task, [example], style)[0]


def task_hint(args: argparse.Namespace) -> None:
    """Without --task, a model trained on a task (its sampling.json says which) gets a reminder on stderr."""
    import sys

    from dopsd.models.loading import resolve_model_path
    from dopsd.sampling.defaults import load_sampling_defaults

    trained_on = load_sampling_defaults(resolve_model_path(args.model)).get("task")
    if args.task is None and trained_on:
        print(f"note: this model was trained on task {trained_on}; the prompt goes to it as given (--task "
              f"{trained_on} writes it as that task's prompts are)", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from dopsd.sampling import BlockDiffusionSampler

    text = prompt_text(args)
    args.question = task_question(args, text)
    apply_model_defaults(args)
    task_hint(args)
    lm = load_model(args)
    import sys

    config = sampler_config(args, lm=lm)
    sampler = BlockDiffusionSampler(lm, config)
    trajectory = sampler.sample([task_prompt(lm, args, text) if args.task else encode_prompt(lm, text, args.chat)],
                                seed=args.seed)[0]
    print(f"attention: {lm.layout.describe()}; decoded {config.gen_length} tokens in blocks of {config.block_length}",
          file=sys.stderr)
    if args.trajectory:
        width = len(str(trajectory.num_steps))
        for step in range(trajectory.num_steps):
            print(f"step {step + 1:>{width}}/{trajectory.num_steps} | {format_step(lm, trajectory, step)}")
        print(f"(recorded steps: {trajectory.num_recorded_steps} of {trajectory.num_steps})")
    print(lm.decode(trajectory.tokens))
    return 0
