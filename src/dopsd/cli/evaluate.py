"""``dopsd eval`` (generate and score a held-out set) and ``dopsd score`` (re-score saved completions)."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from dopsd.cli.options import add_model_options, add_sampler_options, apply_model_defaults, load_model, sampler_config
from dopsd.errors import DopsdError
from dopsd.tasks import PROMPT_STYLES, SAMPLE, TASK_NAMES, get_task, load_examples
from dopsd.tasks.published import SCORING_MODES


def register(subparsers) -> None:
    from dopsd.cli.sample import task_prompt_help

    evaluation = subparsers.add_parser(
        "eval", help="generate greedily on a task's data and score the completions",
        epilog="Each question is written as the task's prompts are: the compact style (the question plus the task's "
        "suffix, e.g. sudoku's 'PUZZLE=', countdown's 'NUMBERS>TARGET=') for the built-in models, the instruct style "
        "(d1's system prompt and the question, through the chat template) otherwise. A question as a data row gives "
        f"it: {task_prompt_help()}. `dopsd sample --task T --prompt QUESTION` writes one prompt the same way.")
    add_model_options(evaluation)
    add_data_options(evaluation)
    add_sampler_options(evaluation, gen_length_many=True)
    evaluation.add_argument("--batch-size", type=int, default=16)
    evaluation.add_argument("--prompt-style", choices=PROMPT_STYLES, default=None,
                            help="how each question is written: compact (the bare question and the task's "
                            "suffix) or instruct (d1's template); default: compact for built-in models, instruct "
                            "otherwise")
    evaluation.add_argument("--output", default=None, help="JSONL file of per-example rows, with each extraction")
    evaluation.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluation.set_defaults(run=run_eval)

    scoring = subparsers.add_parser("score", help="score saved completions against a task's data")
    add_data_options(scoring)
    scoring.add_argument("--completions", required=True, help='JSONL of {"index": i, "completion": "..."}')
    scoring.add_argument("--output", default=None, help="JSONL file of the rescored rows, with each extraction")
    scoring.set_defaults(run=run_score)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASK_NAMES)
    parser.add_argument("--data", default=None,
                        help=f"local CSV/JSONL/Parquet file, '{SAMPLE}' for the package's small sample, or "
                        "bundled:NAME for a bundled model's own held-out set (bundled:sudoku, bundled:countdown, "
                        "bundled:countdown-steps) (default: the task's test split on the hub)")
    parser.add_argument("--limit", type=int, default=None, help="first N examples only")
    parser.add_argument("--scoring", choices=SCORING_MODES, default="dopsd",
                        help="dopsd: this library's extraction policy (docs/scoring.md); d1: as the d1 / d-OPSD "
                             "evaluation scripts score, for comparison with published tables")


def task_examples(args: argparse.Namespace):
    task = get_task(args.task)
    return task, load_examples(task, args.data, "test", args.limit)


def run_eval(args: argparse.Namespace) -> int:
    from dopsd.evaluation import evaluate, write_jsonl
    from dopsd.paths import check_writable_file

    if args.output:
        check_writable_file(args.output, "--output")
    task, examples = task_examples(args)
    apply_model_defaults(args, many=True)
    lm = load_model(args)
    all_rows, summaries = [], []
    for gen_length in args.gen_length:
        config = sampler_config(args, gen_length, lm)
        rows, summary = evaluate(
            lm, task, examples, config, batch_size=args.batch_size, style=args.prompt_style,
            progress=not args.no_progress, scoring=args.scoring,
        )
        for row in rows:
            row["gen_length"] = gen_length
        all_rows.extend(rows)
        summaries.append(summary)
    if args.output:
        write_jsonl(args.output, all_rows)
    for summary in summaries:
        print(json.dumps(summary.to_dict()))
    return 0


def run_score(args: argparse.Namespace) -> int:
    import sys

    from dopsd.evaluation import read_completions, score_row, summarize, write_jsonl
    from dopsd.paths import check_writable_file

    if args.output:
        check_writable_file(args.output, "--output")
    task, examples = task_examples(args)
    groups = defaultdict(dict)
    completions = read_completions(args.completions)
    if not completions:
        raise DopsdError(f"{args.completions} holds no completions: expected JSONL rows of "
                         '{"index": <int>, "completion": <string>}')
    for row in completions:
        index, length = row["index"], row.get("gen_length")
        if not 0 <= index < len(examples):
            raise DopsdError(f"{args.completions}: index {index} is outside the {len(examples)} data rows")
        if index in groups[length]:
            raise DopsdError(f"{args.completions}: index {index} appears twice" +
                             (f" at gen_length {length}" if length is not None else "") + ": keep one completion each")
        scored = score_row(task, examples[index], row["completion"], args.scoring)
        if length is not None:
            scored["gen_length"] = length
        groups[length][index] = scored
    if args.output:
        write_jsonl(args.output, [row for rows in groups.values() for row in rows.values()])
    for gen_length, rows in groups.items():
        missing = len(examples) - len(rows)
        if missing:
            where = f" at gen_length {gen_length}" if gen_length is not None else ""
            print(f"warning: {missing} of the {len(examples)} data rows have no completion{where}; the summary "
                  f"counts the {len(rows)} that do", file=sys.stderr)
        summary = summarize(task, list(rows.values()), gen_length, scoring=args.scoring).to_dict()
        print(json.dumps({**summary, "missing": missing}))
    return 0
