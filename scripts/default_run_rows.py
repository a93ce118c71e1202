"""Every method's default run, shortened, with its logged rows minus the wall-clock fields: a refactor that keeps
behaviour leaves these files identical.

    python scripts/default_run_rows.py OUT            # writes OUT/<command>.jsonl, one per method
    python scripts/default_run_rows.py OUT --compare BEFORE   # ...then says, row by row, where OUT differs from BEFORE

Each run is ``dopsd <command>`` with no model (the bundled CPU preset) and a short budget, so that all of them take a
few minutes on 2 cores; the rows are what ``metrics.jsonl`` logged, floats rounded to 6 significant digits (the
runs here reproduce to 6-7, not bit for bit) and every key naming seconds or a rate per second dropped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# command -> the options that shorten its default run (evaluations kept, on fewer held-out items)
RUNS = {
    "train": ["--max-updates", "4", "--eval-every", "2", "--eval-limit", "50"],
    "rft": ["--max-updates", "4", "--eval-every", "2", "--eval-limit", "50"],
    "grpo": ["--max-updates", "4", "--eval-every", "2", "--eval-limit", "50"],
    "sft": ["--max-updates", "6", "--eval-every", "3", "--eval-limit", "50"],
    "opdlm": ["--max-updates", "4", "--eval-every", "2", "--eval-limit", "50"],
    "image-opsd": ["--max-updates", "4", "--eval-every", "2"],
    "image-fm": ["--max-updates", "4", "--eval-every", "2"],
}
TIMING = ("seconds", "per_second", "wall")


def rounded(value):
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value


def rows_of(metrics: Path) -> list[dict]:
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [{k: rounded(v) for k, v in row.items() if not any(t in k for t in TIMING)} for row in rows]


def record(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for command, options in RUNS.items():
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch) / "run"
            subprocess.run([sys.executable, "-c", "import sys; from dopsd.cli import main; sys.exit(main())", command,
                            *options, "--output-dir", str(folder), "--progress", "false"],
                           check=True, stdout=subprocess.DEVNULL)
            rows = rows_of(folder / "metrics.jsonl")
        (out / f"{command}.jsonl").write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
        print(f"{command}: {len(rows)} rows")


def compare(out: Path, before: Path) -> int:
    differ = 0
    for command in RUNS:
        old = (before / f"{command}.jsonl").read_text().splitlines()
        new = (out / f"{command}.jsonl").read_text().splitlines()
        bad = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
        if bad or len(old) != len(new):
            differ += 1
            print(f"{command}: DIFFERS ({len(old)} rows before, {len(new)} after; first differing row "
                  f"{bad[0] if bad else min(len(old), len(new))})")
        else:
            print(f"{command}: {len(new)} rows identical")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path, default=None, help="a folder an earlier run of this script wrote")
    args = parser.parse_args()
    record(args.out)
    return compare(args.out, args.compare) if args.compare else 0


if __name__ == "__main__":
    sys.exit(main())
