"""``dopsd experiment image``: D-OPSD against flow-matching fine-tuning for the few-step image generator.

Both methods start from the bundled 4-step digit generator and learn the held-out concept (``framed``) from the same
handful of target images, for the same number of updates of the same batch size; three seeds each (the seed draws
the roll-out / noise streams and the batches; the target images and the evaluation noise are the same for every
run). The table reports concept fidelity, retained accuracy and the Frechet distance at 4 steps (the few-step
setting the model was distilled for) and at many steps, with each run's wall time; the base row also shows the
fidelity the base model reaches with a target image in context (what D-OPSD's teacher starts from). A second D-OPSD
row keeps the teacher frozen at the initial weights (``ema_decay`` 1.0). The sample grid shows the seed-0 runs' final
models beside the base model.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from dopsd.experiments.parallel import fill_in_parallel
from dopsd.experiments.tables import markdown_table, mean_spread

# row -> (registry method, variant, the config values the variant changes from the no-argument settings)
METHODS = {
    "FM fine-tuning": ("image-fm", "default", ()),
    "D-OPSD (EMA teacher, decay 0.99)": ("image-opsd", "default", ()),
    "D-OPSD, frozen teacher (decay 1.0)": ("image-opsd", "frozen-teacher", (("ema_decay", 1.0),)),
}


def run_folder(root: Path, method: str, variant: str, seed: int) -> Path:
    return Path(root) / "image" / f"{method}-{variant}-seed{seed}"


def image_run(root: Path, method: str, variant: str, changes: tuple, seed: int, overrides: dict) -> dict:
    """Trains (or reads back) one run with the method's no-argument settings; returns its summary."""
    folder = run_folder(root, method, variant, seed)
    if not (folder / "summary.json").is_file():
        from dopsd.methods import get_method
        from dopsd.presets import bundled_preset
        from dopsd.trainers import checkpoint as ckpt

        entry = get_method(method)
        trainer_class = entry.trainer_class()
        values = {**bundled_preset(entry, {}), **dict(changes), "seed": seed, "output_dir": str(folder),
                  "progress": False, **overrides}
        if ckpt.latest_checkpoint(folder) is not None:
            values["resume_from"] = "latest"
        else:
            values["overwrite_output_dir"] = True
        trainer_class(config=trainer_class.config_class(**values)).train()
    return json.loads((folder / "summary.json").read_text())


def base_with_context(root: Path, concept: str, many_steps: int) -> dict:
    """The bundled model's metrics, with the teacher's fidelity (a target image in context), cached."""
    cache = Path(root) / "image" / f"base-{concept}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    from dopsd.image.bundled import bundled_image_path
    from dopsd.image.classifier import load_classifier
    from dopsd.image.config import ImageTrainingConfig
    from dopsd.image.data import target_images
    from dopsd.image.metrics import Judge, evaluate_generator
    from dopsd.image.model import load_image_model

    config = ImageTrainingConfig(concept=concept)
    model = load_image_model(bundled_image_path("model"))
    judge = Judge(load_classifier(bundled_image_path("classifier")))
    context = target_images(concept, 10, config.target_seed).images
    result = {str(steps): evaluate_generator(model, judge, concept, steps, concept_context=context,
                                             samples_per_prompt=config.eval_samples_per_prompt, seed=config.eval_seed)
              for steps in (config.steps, many_steps)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result) + "\n")
    return result


def sample_grid(root: Path, summaries: dict) -> Path:
    """Base, FM fine-tuning and D-OPSD (seed 0 of each) side by side: the concept's row, then the base styles. The
    panels are cached (``image/panels.pt``), so the grid is redrawn from runs whose checkpoints were not kept."""
    import torch

    from dopsd.image.bundled import bundled_image_path
    from dopsd.image.grid import panel_styles, sample_panel, save_grid
    from dopsd.image.model import load_image_model

    any_summary = next(iter(summaries.values()))
    concept = any_summary["concept"]
    models = {"base (bundled, 4 steps)": bundled_image_path("model")}
    models.update({f"{name} (4 steps)": summary["final_checkpoint"] for name, summary in summaries.items()})
    cache = Path(root) / "image" / "panels.pt"
    if cache.is_file():
        panels = torch.load(cache)
    else:
        panels = {name: sample_panel(load_image_model(path), concept, 4, 0) for name, path in models.items()}
        torch.save(panels, cache)
    return save_grid(panels, Path(root) / "image-samples.png", row_labels=list(panel_styles(concept)),
                     title=f"prompts 'digit 0..9 {concept}' (top row) and the base styles; "
                     "the same noise in each panel")


def image_table(root: Path, tasks: list[str], seeds: list[int], runs: dict, jobs: int = 1, **overrides) -> str:
    root = Path(root)
    calls = [(root, *METHODS[name], seed, overrides) for name in METHODS for seed in seeds]
    summaries = fill_in_parallel(image_run, calls, lambda root, method, variant, _, seed, __: (
        run_folder(root, method, variant, seed) / "summary.json").is_file(), jobs,
        describe=lambda call: f"image run {call[1]}-{call[2]} seed {call[4]}", desc="image runs")
    by_method = {name: summaries[index * len(seeds):(index + 1) * len(seeds)] for index, name in enumerate(METHODS)}
    first = summaries[0]
    concept, few, many = first["concept"], first["before"]["few_step"]["steps"], first["before"]["many_step"]["steps"]
    base = base_with_context(root, concept, many)
    header = ["model", f"fidelity ({few} steps)", f"retained accuracy ({few})", f"Frechet distance ({few})",
              f"concept digit accuracy ({few})", f"fidelity ({many} steps)", f"retained accuracy ({many})",
              f"Frechet distance ({many})", "wall time"]

    def cells(results: list[dict], keys=("fidelity", "retained_accuracy", "frechet", "concept_digit_accuracy")):
        return [mean_spread([r[key] for r in results], 3 if key != "frechet" else 1) for key in keys]

    many_keys = ("fidelity", "retained_accuracy", "frechet")
    rows = [["base (bundled 4-step model)", *cells([base[str(few)]]), *cells([base[str(many)]], many_keys), "-"]]
    for name, group in by_method.items():
        minutes = [s["wall_seconds"] / 60 for s in group]
        rows.append([name, *cells([s["after"]["few_step"] for s in group]),
                     *cells([s["after"]["many_step"] for s in group], many_keys),
                     f"{statistics.fmean(minutes):.1f} min"])
    grid = sample_grid(root, {name: group[0] for name, group in by_method.items()})
    updates = first["updates"]
    teacher = base[str(few)]["teacher_fidelity"]
    return (f"### D-OPSD for a few-step image generator: learning '{concept}' from {first['target_images']} images "
            f"({updates} updates; seeds {seeds}; mean ± std)\n\n" + markdown_table(header, rows)
            + f"\nWith a target image in context the base model's fidelity is {teacher:.3f} at {few} steps (the "
            f"teacher's starting point). Wall time: one run's training and evaluations, mean over seeds.\n\n"
            f"![samples]({grid.name})\n")
