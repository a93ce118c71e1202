"""``dopsd experiment opdlm``: OPDLM with a block-diffusion student, OPDLM with a full-attention student and
masked-diffusion SFT, all from the same bundled causal model, by training tokens.

Block OPDLM (the default ``dopsd opdlm``: BD3LM student in blocks of 4, one stitched state per block, dynamic-threshold
rollouts at temperature 1) and full-attention OPDLM (``attention: full`` with the settings of dopsd's earlier OPDLM:
greedy fixed-step rollouts, 4 sampled states a trajectory, constant rate) convert the causal model on the fly; SFT
starts from its full-attention conversion (saved once under ``<output>/<task>/converted``) and trains on the dataset's
reference solutions with the LLaDA objective, at OPDLM's learning rate, for more updates (each SFT update sees fewer
tokens). Two token counts (prompt + response lengths): *data tokens*, the training data a method consumes (OPDLM: each
rollout sample once; SFT: each reference example), and *sequence tokens*, every sequence run through the student's
backward pass (OPDLM: each trained state, a block student's rows counting the response twice, clean and noisy; SFT:
each example). The AR teacher's greedy accuracy is the ceiling; the table reports the tokens each method needs to
reach a share of it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from dopsd.bundled import BUNDLED_TASKS, bundle_folder
from dopsd.experiments.runs import Run, RunSpec, train_runs
from dopsd.experiments.tables import markdown_table, mean_spread
from dopsd.presets import cpu_preset

TEACHER_SHARE = 0.9
LOWER_SHARE = 0.25  # a level both methods reach within the CPU budget
MEASURES = {"data": "data tokens", "tokens": "sequence tokens"}
# SFT updates per OPDLM update: an SFT update trains 16 sequences, a full-attention OPDLM update 16 prompts x 4
# states, so SFT runs to 1.25 times that OPDLM's sequence tokens and 5 times its data tokens.
SFT_UPDATES_PER_OPDLM_UPDATE = 5
# Full-attention OPDLM as dopsd ran it before block students were the default (its committed runs were made so).
FULL_ATTENTION = (("attention", "full"), ("threshold", None), ("temperature", 0.0), ("lr_scheduler", "constant"),
                  ("warmup_steps", 0), ("max_grad_norm", 0.2))


def opdlm_tasks(tasks: list[str]) -> list[str]:
    """The tasks with a bundled causal model."""
    return [task for task in tasks if task in BUNDLED_TASKS and (bundle_folder(task) / "causal").is_dir()]


def converted_start(root: Path, task: str) -> str:
    """The bundled causal model converted (as ``dopsd opdlm`` converts it on the fly), saved once."""
    folder = Path(root) / task / "converted"
    if not (folder / "config.json").is_file():
        from dopsd.trainers.opdlm import OPDLMConfig, load_student

        lm = load_student(OPDLMConfig(model=cpu_preset(task, "opdlm")["model"], gen_length=8, block_length=4,
                                      attention="full"))
        lm.model.save_pretrained(folder)
        lm.tokenizer.save_pretrained(folder)
    return str(folder)


def specs(root: Path, task: str, seeds: list[int], max_updates: int | None = None) -> dict[str, list[RunSpec]]:
    preset = cpu_preset(task, "opdlm")
    updates = max_updates or preset["max_updates"]
    sft = (("eval_every", preset["eval_every"] * SFT_UPDATES_PER_OPDLM_UPDATE),
           ("learning_rate", preset["learning_rate"]),
           ("max_updates", updates * SFT_UPDATES_PER_OPDLM_UPDATE), ("model", converted_start(root, task)),
           ("prompt_style", "compact"))
    return {"OPDLM, block student": [RunSpec("opdlm", task, seed, "block") for seed in seeds],
            "OPDLM, full attention": [RunSpec("opdlm", task, seed, "full", FULL_ATTENTION) for seed in seeds],
            "masked-diffusion SFT": [RunSpec("sft", task, seed, "from-converted", sft) for seed in seeds]}


def data_tokens(row: dict) -> float:
    """Data tokens of one logged update."""
    if "data_tokens" in row or "rollout_seconds" in row and "states" in row:
        # OPDLM (runs logged before data_tokens existed: every state of a sample is as long as the sample)
        return row.get("data_tokens", row["rollout_samples"] * row["tokens"] / max(row["states"], 1))
    return 0.0 if "states" in row else row.get("tokens", 0)  # OPDLM without a rollout; SFT: each example once


def curve(run: Run, measure: str = "tokens") -> list[tuple[int, float]]:
    """(tokens so far, held-out accuracy) at each evaluation; ``measure`` is ``tokens`` or ``data``."""
    count = data_tokens if measure == "data" else (lambda row: row.get("tokens", 0))
    points = []
    for evaluation in run.evals:
        rows = [r for r in run.rows if 0 < r["update"] <= evaluation["update"] and "loss" in r]
        points.append((int(sum(count(r) for r in rows)), evaluation["accuracy"]))
    return points


def tokens_to(run: Run, level: float, measure: str = "tokens") -> int | None:
    return next((tokens for tokens, accuracy in curve(run, measure) if accuracy >= level), None)


def reached(members: list[Run], level: float, measure: str) -> str:
    hits = [tokens_to(r, level, measure) for r in members]
    found = [t for t in hits if t is not None]
    if not found:
        return f"not reached in {min(curve(r, measure)[-1][0] for r in members):,}"
    return f"{statistics.fmean(found):,.0f} ({len(found)}/{len(members)} seeds)"


def opdlm_table(root: Path, tasks: list[str], seeds: list[int], runs: dict, jobs: int = 1,
                max_updates: int | None = None) -> str:
    texts = []
    for task in opdlm_tasks(tasks):
        groups = specs(root, task, seeds, max_updates)
        trained = train_runs(root, [spec for members in groups.values() for spec in members], jobs)
        results = {name: [trained[spec] for spec in members] for name, members in groups.items()}
        teacher = statistics.fmean(r.summary["teacher_eval"]["accuracy"] for r in results["OPDLM, block student"])
        levels = (LOWER_SHARE * teacher, TEACHER_SHARE * teacher)
        rows = []
        for name, members in results.items():
            totals = [statistics.fmean(curve(r, measure)[-1][0] for r in members) for measure in MEASURES]
            rows.append([name, f"{members[0].evals[0]['accuracy']:.3f}",
                         mean_spread([r.best["accuracy"] for r in members]),
                         mean_spread([r.evals[-1]["accuracy"] for r in members])]
                        + [reached(members, level, measure) for measure in MEASURES for level in levels]
                        + [f"{total:,.0f}" for total in totals])
        header = ["method", "converted start", "best accuracy", "final accuracy"]
        header += [f"{label} to {share:.0%} of the teacher ({level:.3f})" for label in MEASURES.values()
                   for share, level in zip((LOWER_SHARE, TEACHER_SHARE), levels)]
        table = markdown_table(header + [f"{label} trained" for label in MEASURES.values()], rows)
        path = plot_curves(results, teacher, levels[1], Path(root) / f"opdlm-{task}.png", task)
        texts.append(f"### OPDLM (block and full-attention students) against masked-diffusion SFT ({task}, seeds "
                     f"{seeds}; AR teacher {teacher:.3f})\n\n"
                     f"![opdlm]({path.name})\n\n{table}")
    return "\n".join(texts) or "No task with a bundled causal model was named (OPDLM's is Sudoku's).\n"


def plot_curves(results: dict[str, list[Run]], teacher: float, level: float, path: Path, task: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, (measure, label) in zip(axes, MEASURES.items()):
        for color, (name, members) in zip(("tab:blue", "tab:green", "tab:orange"), results.items()):
            for index, run in enumerate(members):
                tokens, accuracy = zip(*curve(run, measure))
                axis.plot(tokens, accuracy, color=color, alpha=0.8, marker=".", linewidth=1,
                          label=name if index == 0 else None)
        axis.axhline(teacher, color="black", linestyle="--", linewidth=1, label=f"AR teacher ({teacher:.3f})")
        axis.axhline(level, color="gray", linestyle=":", linewidth=1, label=f"{TEACHER_SHARE:.0%} of the teacher")
        axis.set_xlim(left=0)
        axis.set_xlabel(f"{label} (prompt + response)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("held-out accuracy")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"OPDLM (block / full-attention student) vs masked-diffusion SFT from the causal model, {task}",
                    fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
