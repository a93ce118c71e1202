"""Command-line options shared by subcommands that load a model or sample from it."""

from __future__ import annotations

import argparse

from dopsd.cli.parser import finite_float


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True,
                       help="model folder, hub name, training checkpoint folder, or bundled:sudoku / "
                       "bundled:countdown / bundled:countdown-steps")
    group.add_argument("--trust-remote-code", action="store_true", help="run code shipped with the checkpoint")
    group.add_argument("--base", default=None,
                       help="base model of a LoRA adapter folder (default: the one the adapter names)")
    group.add_argument("--dtype", default="auto", help="auto (checkpoint's), float32, bfloat16 or float16")
    group.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    group.add_argument("--mask-token-id", type=int, default=None, help="override the mask token id")
    group.add_argument("--eos-token-id", type=int, default=None, help="override the EOS token id")
    group.add_argument("--pad-token-id", type=int, default=None, help="override the padding token id")
    group.add_argument("--block-size", type=int, default=None,
                       help="declare a block-attention (block-diffusion) model with blocks of this many tokens, for "
                       "checkpoints whose config does not say (SDAR, TraDo: 4); default: the model's config")


def load_model(args: argparse.Namespace):
    from dopsd.models import default_device, load_diffusion_lm

    return load_diffusion_lm(
        args.model,
        trust_remote_code=args.trust_remote_code,
        dtype=args.dtype,
        device=args.device or default_device(),
        mask_token_id=args.mask_token_id,
        eos_token_id=args.eos_token_id,
        pad_token_id=args.pad_token_id,
        base_model=args.base,
        block_size=args.block_size,
    )


def add_sampler_options(parser: argparse.ArgumentParser, *, gen_length_many: bool = False) -> None:
    group = parser.add_argument_group("sampling")
    if gen_length_many:
        group.add_argument("--gen-length", type=int, nargs="+", default=None,
                           help="response length(s) in tokens (default: the model's sampling.json, else 256)")
    else:
        group.add_argument("--gen-length", type=int, default=None,
                           help="response length in tokens (default: the model's sampling.json, else 256)")
    group.add_argument("--block-length", type=int, default=None,
                       help="tokens per block (default: the model's sampling.json, else its attention block size, "
                       "else 32; a block-attention model needs its block size)")
    group.add_argument("--steps", type=int, default=None, help="denoising steps (default: gen_length / 2)")
    group.add_argument("--temperature", type=finite_float, default=0.0, help="0 = greedy")
    group.add_argument("--remasking", choices=("low_confidence", "random"), default="low_confidence")
    group.add_argument("--threshold", type=finite_float, default=None, help="confidence-threshold parallel decoding")
    group.add_argument("--cache", choices=("prefix", "dual"), default=None,
                       help="Fast-dLLM block KV cache (faster; exact with one step per block, approximate otherwise; "
                       "on a block-attention model either mode caches the finished blocks, exactly)")


def apply_model_defaults(args: argparse.Namespace, *, many: bool = False) -> None:
    """Lengths not given on the command line: the model folder's own (``sampling.json``: the bundled models and
    every dopsd checkpoint have one), else the paper's 256 tokens in blocks of 32; said on stderr when taken."""
    import sys

    from dopsd.models.loading import resolve_model_path
    from dopsd.sampling.defaults import load_sampling_defaults

    own = load_sampling_defaults(resolve_model_path(args.model))
    taken = []
    if args.gen_length is None:
        length = own.get("gen_length", 256)
        args.gen_length = [length] if many else length
        taken.append(f"gen_length {length}")
    if args.block_length is None and "block_length" in own:
        args.block_length = own["block_length"]
        taken.append(f"block_length {args.block_length}")
    if own and taken:
        print(f"using the model's own {' and '.join(taken)} (its sampling.json)", file=sys.stderr)


def sampler_config(args: argparse.Namespace, gen_length: int | None = None, lm=None):
    """The sampler settings of the command line; a block length nobody gave is ``lm``'s attention block size (a
    block-attention model), else 32; a block-attention model decodes with its exact block cache unless ``--cache``
    says otherwise."""
    from dopsd.models.cache import default_cache_mode
    from dopsd.sampling import SamplerConfig

    block_length = args.block_length
    if block_length is None:
        block_length = lm.layout.block_size if lm is not None and lm.layout.is_block else 32
    cache = getattr(args, "cache", None)
    if lm is not None:
        cache = default_cache_mode(lm, cache)  # exact on a block model: the same tokens, faster
    return SamplerConfig(
        gen_length=gen_length if gen_length is not None else args.gen_length,
        block_length=block_length,
        steps=args.steps,
        temperature=args.temperature,
        remasking=args.remasking,
        threshold=args.threshold,
        cache=cache,
    )
