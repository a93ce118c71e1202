"""dopsd: on-policy self-distillation (d-OPSD) and its baselines for masked diffusion language models."""

from dopsd.errors import DopsdError
from dopsd.models import DiffusionLM, create_builtin_model, load_diffusion_lm, register_builtin_models
from dopsd.sampling import BlockDiffusionSampler, SamplerConfig, Trajectory

__version__ = "0.1.0"

register_builtin_models()

__all__ = [
    "BlockDiffusionSampler",
    "DiffusionLM",
    "DopsdError",
    "SamplerConfig",
    "Trajectory",
    "create_builtin_model",
    "load_diffusion_lm",
]
