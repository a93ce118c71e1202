"""d-OPSD's building blocks: the self-teacher's input and the step-level divergence."""

from dopsd.distill.divergence import DIVERGENCES, DivergenceResult, overlap_top_k, step_divergence
from dopsd.distill.selection import most_confident
from dopsd.distill.teacher import reveal_future

__all__ = ["DIVERGENCES", "DivergenceResult", "most_confident", "overlap_top_k", "reveal_future", "step_divergence"]
