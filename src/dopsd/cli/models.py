"""``dopsd create-model`` and ``dopsd convert``: making models to sample from and train."""

from __future__ import annotations

import argparse

from dopsd.errors import DopsdError


def register(subparsers) -> None:
    create = subparsers.add_parser("create-model", help="save a randomly initialised built-in model")
    create.add_argument("output", help="folder to write (save_pretrained form)")
    create.add_argument("--hidden-size", type=int, default=128)
    create.add_argument("--layers", type=int, default=4)
    create.add_argument("--heads", type=int, default=4)
    create.add_argument("--max-length", type=int, default=512, help="max_position_embeddings")
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--block-size", type=int, default=None,
                        help="make a block-attention (block-diffusion) model with blocks of this many tokens "
                        "(default: full attention)")
    create.set_defaults(run=run_create)

    convert = subparsers.add_parser("convert", help="turn a causal LM into a masked diffusion LM")
    convert.add_argument("--model", required=True, help="causal LM folder or hub name")
    convert.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    convert.add_argument("--output", required=True, help="folder to write")
    convert.add_argument("--mask-token", default=None, help="mask token text (default <|mdm_mask|> if none exists)")
    convert.add_argument("--no-shift", action="store_true",
                         help="predict position i from hidden state i (no Dream shift)")
    convert.add_argument("--attention", choices=("full", "block"), default="full",
                         help="full: bidirectional over the whole sequence (LLaDA/Dream style); block: bidirectional "
                         "inside blocks of --block-size tokens, causal across blocks (BD3LM, OPDLM's student)")
    convert.add_argument("--block-size", type=int, default=4, help="tokens per attention block with --attention block")
    convert.add_argument("--dtype", default="auto")
    convert.set_defaults(run=run_convert)

    export = subparsers.add_parser("export", help="a trained checkpoint as a full model folder with a model card "
                                   "(LoRA merged in)")
    export.add_argument("source", help="a run's checkpoint-N, checkpoint-N/model or best folder (or any model folder)")
    export.add_argument("output",
                        help="new folder to write (save_pretrained form, tokenizer, sampling.json, README.md)")
    export.add_argument("--base", default=None, help="base model of a LoRA adapter (default: the one it names)")
    export.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the base model")
    export.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="also upload the folder to this repo")
    export.set_defaults(run=run_export)


def run_create(args: argparse.Namespace) -> int:
    from dopsd.models import create_builtin_model
    from dopsd.paths import check_new_folder

    if args.block_size is not None and args.block_size < 1:
        raise DopsdError(f"--block-size must be at least 1, got {args.block_size}")
    check_new_folder(args.output, "the model folder")
    layout = {} if args.block_size is None else {"attention_layout": "block", "block_size": args.block_size}
    lm = create_builtin_model(
        seed=args.seed,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        max_position_embeddings=args.max_length,
        **layout,
    )
    lm.model.save_pretrained(args.output)
    lm.tokenizer.save_pretrained(args.output)
    parameters = sum(p.numel() for p in lm.model.parameters())
    print(f"saved a random built-in model ({parameters / 1e6:.2f}M parameters, attention {lm.layout.describe()}) to "
          f"{args.output}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dopsd.models.convert import DEFAULT_MASK_TOKEN, convert_causal_lm
    from dopsd.models.layout import AttentionLayout
    from dopsd.models.loading import parse_dtype
    from dopsd.paths import check_new_folder

    layout = AttentionLayout("block", args.block_size) if args.attention == "block" else AttentionLayout()
    check_new_folder(args.output, "the model folder")
    extra = {"gguf_file": args.gguf_file} if args.gguf_file else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=parse_dtype(args.dtype), **extra)
        tokenizer = AutoTokenizer.from_pretrained(args.model, **extra)
    except (OSError, ValueError) as error:
        raise DopsdError(f"cannot load a causal LM from {args.model!r}: {str(error).splitlines()[0]}") from error
    model, tokenizer = convert_causal_lm(
        model, tokenizer, mask_token=args.mask_token or DEFAULT_MASK_TOKEN, shift_logits=not args.no_shift,
        layout=layout,
    )
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    print(f"saved a masked diffusion LM (attention {layout.describe()}, mask token id {tokenizer.mask_token_id}) to "
          f"{args.output}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from dopsd.models.export import export_model

    output = export_model(args.source, args.output, base_model=args.base, trust_remote_code=args.trust_remote_code,
                          push_to_hub=args.push_to_hub)
    print(f"exported {args.source} to {output}" + (f" and pushed it to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0
