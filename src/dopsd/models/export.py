"""``dopsd export``: a trained checkpoint as a model people can use: the LoRA adapter merged into full weights, in
``save_pretrained`` form, with its tokenizer, its decoding settings and a model card; optionally uploaded to the hub."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from dopsd.errors import DopsdError
from dopsd.paths import check_new_folder
from dopsd.sampling.defaults import SAMPLING_FILE

CARD_FIELDS = ("model", "task", "train_data", "eval_data", "use_lora", "lora_r", "lora_alpha", "learning_rate",
               "max_updates", "gen_length", "block_length", "teacher_retain_ratio", "passk", "divergence",
               "top_k_loss", "clip", "num_generations", "inner_updates", "beta", "seed")


def trained_at(source: Path) -> tuple[Path | None, int | None]:
    """The training run a saved model came from and the update its weights are from: ``RUN/checkpoint-N/model``
    (or ``RUN/checkpoint-N``) and ``RUN/best``; ``(None, None)`` for any other folder."""
    folder = source.parent if source.name == "model" else source
    if re.fullmatch(r"checkpoint-\d+", folder.name):
        return folder.parent, int(folder.name.split("-")[1])
    if folder.name == "best" and (folder / "eval.json").is_file():
        return folder.parent, json.loads((folder / "eval.json").read_text())["update"]
    return None, None


def model_card(source: Path, lm) -> str:
    """A README.md: what the model is, how it was trained (the run's settings and held-out results)."""
    run, update = trained_at(source)
    if run is not None and not (run / "config.yaml").is_file():
        run = None
    lines = ["---", "library_name: transformers", "tags: [dopsd, diffusion-language-model, masked-diffusion]", "---",
             "", f"# {source.name if source.name != 'model' else source.parent.name}", "",
             f"A masked diffusion language model exported by dopsd from `{source}`"
             + (f" (LoRA adapter merged into `{lm.adapter_base}`)." if getattr(lm, "adapter_base", None) else "."),
             f"Mask token id {lm.tokens.mask}, EOS id {lm.tokens.eos}."]
    sampling = source / SAMPLING_FILE
    if sampling.is_file():
        settings = json.loads(sampling.read_text())
        lines.append(f"Decode with responses of {settings.get('gen_length')} tokens in blocks of "
                     f"{settings.get('block_length')} (`sampling.json`; `dopsd eval --model THIS_FOLDER` uses them).")
    if run is not None:
        lines.append(f"The weights are those of update {update} of the training run below.")
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
        lines += ["", "## Training", "", "| setting | value |", "| --- | --- |"]
        lines += [f"| {name} | {config[name]} |" for name in CARD_FIELDS if name in config]
        summary_path = run / "summary.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            lines += ["", "## Held-out results", "", "| evaluation | update | accuracy | mean score | examples |",
                      "| --- | --- | --- | --- | --- |"]
            for label in ("eval_before", "eval_after", "best_eval"):
                entry = summary.get(label) or {}
                lines.append(f"| {label.replace('_', ' ')} | {entry.get('update')} | {entry.get('accuracy')} | "
                             f"{entry.get('mean_score')} | {entry.get('n')} |")
            if summary.get("trainer"):
                lines += ["", f"Method: {summary['trainer']} (dopsd)."]
    return "\n".join(lines) + "\n"


def export_model(source: str | Path, output: str | Path, *, base_model: str | None = None,
                 trust_remote_code: bool = False, push_to_hub: str | None = None) -> Path:
    """Merges (if it is an adapter) and saves the model at ``source`` into the new folder ``output``."""
    from dopsd.models.loading import load_diffusion_lm, resolve_model_path

    source = Path(resolve_model_path(source))
    output = Path(output)
    check_new_folder(output, "the export folder")
    lm = load_diffusion_lm(source, base_model=base_model, trust_remote_code=trust_remote_code, device="cpu")
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    lm.model.save_pretrained(partial)
    lm.tokenizer.save_pretrained(partial)
    if (source / SAMPLING_FILE).is_file():
        shutil.copyfile(source / SAMPLING_FILE, partial / SAMPLING_FILE)
    (partial / "README.md").write_text(model_card(source, lm))
    if output.exists():
        output.rmdir()
    partial.rename(output)
    if push_to_hub:
        upload(output, push_to_hub)
    return output


def upload(folder: Path, repo_id: str) -> None:
    from huggingface_hub import HfApi

    from dopsd.hub import hub_unreachable

    if reason := hub_unreachable():
        raise DopsdError(f"cannot push to {repo_id}: the Hugging Face hub is out of reach ({reason}); the export is "
                         f"in {folder}")
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="dopsd export")
