"""The bundled image models (``dopsd/bundled/image/``): ``model`` (the 4-step generator the image commands train),
``base`` (the many-step flow-matching model it was distilled from) and ``classifier`` (the judge of the metrics),
rebuilt by ``scripts/build_image_models.py``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dopsd.errors import DopsdError

NAMES = ("model", "base", "classifier")


def bundled_image_path(name: str = "model") -> str:
    if name not in NAMES:
        raise DopsdError(f"no bundled image model {name!r}: choose one of {', '.join(NAMES)}")
    folder = Path(str(resources.files("dopsd.bundled"))) / "image" / name
    if not (folder / "config.json").is_file():
        raise DopsdError(f"the bundled image {name} is missing from {folder}: run scripts/build_image_models.py")
    return str(folder)
