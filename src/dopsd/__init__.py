"""dopsd: on-policy self-distillation (d-OPSD) and its baselines for masked diffusion language models.

The public names below are imported on first use, so ``import dopsd`` (and the ``dopsd`` command's help) stays fast;
the built-in model family registers with transformers' Auto classes when :mod:`dopsd.models` is imported, which
every dopsd function that loads a model does.
"""

import importlib

from dopsd.errors import DopsdError

__version__ = "0.1.0"

_LAZY = {
    "BlockDiffusionSampler": "dopsd.sampling",
    "DiffusionLM": "dopsd.models",
    "SamplerConfig": "dopsd.sampling",
    "Trajectory": "dopsd.sampling",
    "create_builtin_model": "dopsd.models",
    "load_diffusion_lm": "dopsd.models",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dopsd' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["DopsdError", *_LAZY]
