"""``dopsd export``: a trained checkpoint as a model people can use: the LoRA adapter merged into full weights, in
``save_pretrained`` form, with its tokenizer, its decoding settings and a model card; optionally uploaded to the hub.

An export loads without dopsd. A model of the built-in family gets its modeling code written into the folder
(``modeling_dopsd_mdm.py``, a copy of :mod:`dopsd.models.builtin`, which imports only torch and transformers) and an
``auto_map`` in ``config.json``, as remote-code models ship theirs: ``transformers.AutoModel.from_pretrained(folder,
trust_remote_code=True)`` loads it in a plain transformers install. A remote-code model (LLaDA, Dream) carries its
code along as it came (``save_pretrained`` copies it). The model card gives the loading line.
"""

from __future__ import annotations

import inspect
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
# Settings that mean something only when another one is on: {setting: the one it needs}.
CARD_NEEDS = {"lora_r": "use_lora", "lora_alpha": "use_lora"}
# Fields whose values may be local paths: shown without the folders above them.
PATH_FIELDS = ("model", "train_data", "eval_data")

# The built-in family's code, shipped in every export of one of its models.
BUILTIN_CODE_FILE = "modeling_dopsd_mdm.py"
BUILTIN_AUTO_MAP = {
    "AutoConfig": "modeling_dopsd_mdm.MaskedDiffusionConfig",
    "AutoModel": "modeling_dopsd_mdm.MaskedDiffusionTransformer",
    "AutoModelForMaskedLM": "modeling_dopsd_mdm.MaskedDiffusionTransformer",
}


def builtin_source() -> str:
    """The built-in family's modeling code as shipped in an export: :mod:`dopsd.models.builtin`, which must import
    nothing of dopsd (checked: the copy runs where dopsd is not installed)."""
    from dopsd.models import builtin

    source = inspect.getsource(builtin)
    if re.search(r"^\s*(from|import)\s+dopsd\b", source, re.MULTILINE):
        raise RuntimeError("dopsd/models/builtin.py imports dopsd: its copy in an export would not load without "
                           "dopsd")
    header = ("# The dopsd built-in masked diffusion LM (model_type dopsd_mdm), shipped with this model so that it "
              "loads\n"
              "# with transformers alone: AutoModel.from_pretrained(folder, trust_remote_code=True).\n"
              "# A copy of dopsd/models/builtin.py; it needs torch and transformers only.\n")
    return header + source


def ship_builtin_code(model, folder: Path) -> bool:
    """Writes the built-in family's code and its ``auto_map`` into a ``save_pretrained`` folder of ``model``;
    ``False`` (nothing written) for any other model."""
    from dopsd.models.builtin import MaskedDiffusionTransformer

    if type(model) is not MaskedDiffusionTransformer:
        return False
    (folder / BUILTIN_CODE_FILE).write_text(builtin_source(), encoding="utf-8")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["auto_map"] = dict(BUILTIN_AUTO_MAP)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return True


def shown_path(value) -> str:
    """A setting's value for a model card that others read: a local path is shown by its last part only (never the
    folders of the machine that trained it; a file of dopsd's own bundled data as ``dopsd:bundled/...``); hub names,
    ``sample``, ``bundled:NAME`` and other values as they are."""
    text = str(value)
    if text.startswith("bundled:") or text == "sample":
        return text
    path = Path(text).expanduser()
    package = Path(__file__).resolve().parents[1]
    try:
        return f"dopsd:{path.resolve().relative_to(package).as_posix()}"
    except (ValueError, OSError):
        pass
    local = path.is_absolute() or text.startswith((".", "~")) or path.exists()
    return f"{path.name} (a local path)" if local else text


def loading_lines(lm, name: str, shipped: bool) -> list[str]:
    """The model card's "Loading" section: the plain-transformers line where the folder carries its code (the
    built-in family's, or remote code copied along), dopsd's loader always."""
    from dopsd.models.convert import diffusion_settings

    config = lm.model.config
    remote = bool(getattr(config, "auto_map", None)) or shipped
    converted = bool(diffusion_settings(config)) and not remote
    lines = ["", "## Loading", ""]
    if remote or not converted:
        extra = ", trust_remote_code=True" if remote else ""
        where = "the modeling code is in this folder" if remote else "a transformers architecture"
        lines += [f"With transformers alone ({where}; no dopsd needed):", "", "```python",
                  "from transformers import AutoModel, AutoTokenizer", "",
                  f'model = AutoModel.from_pretrained("{name}"{extra})',
                  f'tokenizer = AutoTokenizer.from_pretrained("{name}"{extra})', "```", "",
                  "The model predicts every masked position at once (`model(input_ids).logits`); decode it with a "
                  "masked-diffusion sampler, such as dopsd's:", ""]
    else:
        lines += ["This model needs dopsd's loader (a causal LM converted to attend in both directions):", ""]
    lines += ["```python", "from dopsd import load_diffusion_lm", "",
              f'lm = load_diffusion_lm("{name}"{", trust_remote_code=True" if remote and not shipped else ""})',
              "```"]
    layout = getattr(lm, "layout", None)
    if layout is not None and layout.is_block:
        lines += ["", f"It attends in blocks of {layout.block_size} tokens (block-causal): a forward pass takes that "
                  "structure as a 4D `attention_mask` (batch, 1, queries, keys), True where a query may attend; "
                  "dopsd builds it (`lm.logits(ids, response_start=...)`)."]
    return lines


def trained_at(source: Path) -> tuple[Path | None, int | None]:
    """The training run a saved model came from and the update its weights are from: ``RUN/checkpoint-N/model``
    (or ``RUN/checkpoint-N``) and ``RUN/best``; ``(None, None)`` for any other folder."""
    folder = source.parent if source.name == "model" else source
    if re.fullmatch(r"checkpoint-\d+", folder.name):
        return folder.parent, int(folder.name.split("-")[1])
    if folder.name == "best" and (folder / "eval.json").is_file():
        return folder.parent, json.loads((folder / "eval.json").read_text())["update"]
    return None, None


def model_card(source: Path, lm, name: str | None = None, shipped: bool = False) -> str:
    """A README.md: what the model is, how to load it (as ``name``: the hub repository or the export folder's name),
    how it was trained (the settings the run used, no local paths) and its held-out results."""
    run, update = trained_at(source)
    if run is not None and not (run / "config.yaml").is_file():
        run = None
    origin = (f"{run.name}/{source.relative_to(run).as_posix()}" if run is not None
              else f"{source.parent.name}/{source.name}" if source.name == "model" else source.name)
    title = source.name if source.name != "model" else source.parent.name
    name = name or title
    base = getattr(lm, "adapter_base", None)
    lines = ["---", "library_name: transformers", "tags: [dopsd, diffusion-language-model, masked-diffusion]", "---",
             "", f"# {title}", "",
             f"A masked diffusion language model exported by dopsd from `{origin}`"
             + (f" (LoRA adapter merged into `{shown_path(base)}`)." if base else "."),
             f"Mask token id {lm.tokens.mask}, EOS id {lm.tokens.eos}."]
    sampling = source / SAMPLING_FILE
    if sampling.is_file():
        settings = json.loads(sampling.read_text())
        lines.append(f"Decode with responses of {settings.get('gen_length')} tokens in blocks of "
                     f"{settings.get('block_length')} (`sampling.json`; `dopsd eval --model THIS_FOLDER` uses them).")
    lines += loading_lines(lm, name, shipped)
    if run is not None:
        config = yaml.safe_load((run / "config.yaml").read_text()) or {}
        used = [field for field in CARD_FIELDS if field in config
                and (field not in CARD_NEEDS or config.get(CARD_NEEDS[field]))]
        lines += ["", "## Training", "", f"The weights are those of update {update} of the training run below.", "",
                  "| setting | value |", "| --- | --- |"]
        lines += [f"| {field} | {shown_path(config[field]) if field in PATH_FIELDS else config[field]} |"
                  for field in used]
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
    """Merges (if it is an adapter) and saves the model at ``source`` into the new folder ``output``, with the code
    it needs to load without dopsd (the built-in family's) and a model card."""
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
    shipped = ship_builtin_code(lm.model, partial)
    if (source / SAMPLING_FILE).is_file():
        shutil.copyfile(source / SAMPLING_FILE, partial / SAMPLING_FILE)
    (partial / "README.md").write_text(model_card(source, lm, push_to_hub or output.name, shipped))
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
