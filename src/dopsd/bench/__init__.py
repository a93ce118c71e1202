"""``dopsd bench``: dopsd's rollout and loss against a naive procedure, on random-weight models of named shapes."""

from dopsd.bench.naive import naive_loss, naive_rollout
from dopsd.bench.shapes import SHAPES, build_model

__all__ = ["SHAPES", "build_model", "naive_loss", "naive_rollout"]
