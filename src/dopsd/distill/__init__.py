"""d-OPSD's building blocks: the teacher's input, K_t selection and the step-level divergence."""

from dopsd.distill.divergence import (
    CLIP_MODES,
    DIVERGENCES,
    DivergenceResult,
    clip_gradient_cosine,
    overlap_top_k,
    step_divergence,
)
from dopsd.distill.selection import most_confident
from dopsd.distill.teacher import PreparedTrajectory, prepare_trajectory, reveal_future

__all__ = ["CLIP_MODES", "DIVERGENCES", "DivergenceResult", "PreparedTrajectory", "clip_gradient_cosine",
           "most_confident", "overlap_top_k", "prepare_trajectory", "reveal_future", "step_divergence"]
