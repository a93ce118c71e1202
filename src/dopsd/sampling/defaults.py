"""A model folder's own decoding settings (``sampling.json``): the response and block lengths it was trained and
evaluated with, which ``dopsd eval`` and ``dopsd sample`` use when no length is given. The bundled models and every
checkpoint dopsd writes carry one; a model without one gets the paper's 256 tokens in blocks of 32."""

from __future__ import annotations

import json
from pathlib import Path

SAMPLING_FILE = "sampling.json"


def save_sampling_defaults(folder: str | Path, gen_length: int, block_length: int, task: str | None = None) -> None:
    settings = {"gen_length": gen_length, "block_length": block_length, "task": task}
    (Path(folder) / SAMPLING_FILE).write_text(json.dumps(settings) + "\n")


def load_sampling_defaults(folder: str | Path) -> dict:
    """The folder's settings, or ``{}`` when it has none (a hub name, a model trained elsewhere)."""
    path = Path(folder) / SAMPLING_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return settings if isinstance(settings, dict) else {}
