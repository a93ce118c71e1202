"""``dopsd bench``: dopsd's rollout and loss against the naive procedure, side by side, on a random-weight model."""

from __future__ import annotations

import argparse

from dopsd.cli.parser import finite_float

# dopsd.bench.shapes.SHAPES, named here to keep --help light
SHAPE_NAMES = ("tiny", "smollm2-135m", "llada-8b", "llama-toy")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="time dopsd's rollout and loss against the naive procedure",
        description="Per trajectory: rollout, teacher + student loss passes with backward, and their sum, for dopsd "
        "and for the naive procedure (one prompt at a time, full-vocabulary logits everywhere, every state through "
        "the model); min / median over repeats, tokens/s, peak memory, MFU on a GPU. With --attention block: a "
        "block-causal model of the shape, whose rollout is timed with the exact block KV cache against the same "
        "model uncached (forwards, tokens per forward; no loss and no naive side).")
    parser.add_argument("--shape", choices=SHAPE_NAMES, default="tiny",
                        help="tiny: hidden 256, 4 layers, vocab 49152; smollm2-135m; llada-8b; llama-toy (hidden 64, 2 "
                        "layers, vocab 512: a quick check)")
    parser.add_argument("--layers", type=int, default=None, help="cut (or extend) the shape's depth")
    parser.add_argument("--prompt-length", type=int, default=100)
    parser.add_argument("--gen-length", type=int, default=64,
                        help="response tokens (default 64, half the issue's 128, so the default run fits in 3 "
                        "minutes on 2 CPU cores; --gen-length 128 --steps 64 for the full workload)")
    parser.add_argument("--block-length", type=int, default=None,
                        help="tokens per decoding block (default 32; with --attention block: the block size)")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--temperature", type=finite_float, default=0.9,
                        help="rollout temperature (pass@k resampling's)")
    parser.add_argument("--batch", type=int, default=1, help="prompts dopsd samples together (naive: always one)")
    parser.add_argument("--micro-batch-size", type=int, default=16, help="dopsd's stacked states per pass")
    parser.add_argument("--chunks", type=int, default=4, help="chunks the naive loss splits the states into")
    parser.add_argument("--passk", type=int, default=8, help="rounds of an unsolved prompt, for the derived row")
    parser.add_argument("--warmup", type=int, default=1, help="dopsd's unmeasured first runs (one-off probes)")
    parser.add_argument("--repeats", type=int, default=3, help="dopsd's measured runs (min / median)")
    parser.add_argument("--naive-warmup", type=int, default=0, help="the naive procedure's unmeasured first runs")
    parser.add_argument("--naive-repeats", type=int, default=1,
                        help="the naive procedure's measured runs (each takes minutes on a CPU)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32 (default on CPU) or bfloat16 (default on GPU)")
    parser.add_argument("--peak-tflops", type=finite_float, default=None, help="the device's peak, for MFU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", choices=("prefix", "dual"), default=None,
                        help="dopsd's rollouts with the block KV cache")
    parser.add_argument("--also-cache", nargs="+", choices=("none", "prefix", "dual"), default=(),
                        help="also time dopsd's rollout in these cache modes, in the same process (rows per mode)")
    parser.add_argument("--solved-round", type=int, default=5,
                        help="the per-prompt row: a prompt solved at this pass@k round (the default run averages 5.3)")
    parser.add_argument("--dopsd-only", action="store_true", help="skip the naive procedure (measure a change)")
    parser.add_argument("--attention", choices=("full", "block"), default="full",
                        help="block: the shape block-causal (as dopsd convert --attention block makes it); times "
                        "its rollout with the exact block cache against uncached")
    parser.add_argument("--block-size", type=int, default=4, help="tokens per attention block with --attention block")
    parser.add_argument("--lora", type=int, default=None, metavar="R",
                        help="both sides train a rank-R LoRA adapter only (the paper's r = 128), on the projections a "
                        "LoRA run adapts; default: every weight trained")
    parser.add_argument("--lora-alpha", type=finite_float, default=None,
                        help="LoRA alpha (default: the paper's ratio, alpha = R / 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--save", default=None, metavar="PATH", help="also write the results as JSON to PATH")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import torch

    from dopsd.bench.report import format_table
    from dopsd.bench.run import BenchSettings, run_bench

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    block = args.attention == "block"
    block_length = args.block_length if args.block_length is not None else args.block_size if block else 32
    settings = BenchSettings(
        shape=args.shape, layers=args.layers, prompt_length=args.prompt_length, gen_length=args.gen_length,
        block_length=block_length, steps=args.steps, temperature=args.temperature, batch=args.batch,
        micro_batch_size=args.micro_batch_size, chunks=args.chunks, passk=args.passk, warmup=args.warmup,
        repeats=args.repeats, naive_warmup=args.naive_warmup, naive_repeats=args.naive_repeats, device=device,
        dtype=dtype, seed=args.seed, peak_tflops=args.peak_tflops, naive=not args.dopsd_only, cache=args.cache,
        also_cache=tuple(args.also_cache), solved_round=args.solved_round, attention=args.attention,
        block_size=args.block_size if block else None, lora=args.lora, lora_alpha=args.lora_alpha)
    results = run_bench(settings, log=lambda message: print(message, file=sys.stderr, flush=True))
    if args.save:
        with open(args.save, "w") as handle:
            json.dump(results, handle, indent=2)
            handle.write("\n")
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0
