#!/usr/bin/env python
"""Proves dopsd on a GPU in at most ten minutes and writes a dated report (Markdown + JSON), then prints it.

    python scripts/gpu_check.py                      # on a GPU: report under docs/results/gpu/
    python scripts/gpu_check.py --dry-run            # toy shapes on the CPU (under 5 minutes), report in a temp folder
    python scripts/gpu_check.py --dry-run --output /tmp/gpucheck

Parts (each in its own process, with its own time budget; a step that does not fit in the time or memory left is
skipped with a line, an out-of-memory error is caught and reported): 1. environment, 2. dopsd bench at the 135M and
8B shapes (full attention and block-causal, bf16), 3. d-OPSD updates at the 8B shape with the paper's settings, 4.
SmolLM2-135M-Instruct (the offline GGUF) through OPDLM and d-OPSD on short arithmetic, 5. the two-process DDP and
FSDP2 equivalence checks on NCCL (two GPUs or more). The library side is dopsd.bench.gpu_check and gpu_parts.
Exit status: 0 when every part ran or was skipped with its reason, 1 when a part failed, 2 when nothing could run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's dopsd, installed or not


def main(argv: list[str] | None = None) -> int:
    from dopsd.bench.gpu_check import PARTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="toy shapes on the CPU, float32, a few steps: the same parts and report layout")
    parser.add_argument("--output", default=None,
                        help="folder for the report (default: docs/results/gpu/ on a GPU, a new temporary folder for "
                        "a dry run)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all parts together (default: 570 on a GPU, 270 for a dry run)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (models, runs) and say where")
    args = parser.parse_args(argv)

    from dopsd.bench.gpu_check import run_check

    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("error: no CUDA device torch can use: run on a GPU, or pass --dry-run", file=sys.stderr)
            return 2
    markdown, data, report = run_check(dry_run=args.dry_run, output=args.output, budget=args.budget,
                                       parts=tuple(args.parts), repo=REPO, keep_work=args.keep_work)
    print(markdown.read_text(), flush=True)
    print(f"report written to {markdown} and {data}", flush=True)
    return 1 if any(part["status"] == "failed" for part in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
