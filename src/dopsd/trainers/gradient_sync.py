"""Setting accelerate's gradient-accumulation boundary directly.

An update here has as many micro-batches as its states need, so accelerate's ``accumulate()`` (a fixed count of
micro-batches per step) cannot mark the last one; the trainers mark it themselves. accelerate's public way is the
``Accelerator.sync_gradients`` setter (accelerate 1.0 on); its own ``accumulate()`` uses the private
``GradientState._set_sync_gradients``, which also marks an XLA step on TPUs.
"""

from __future__ import annotations


def set_sync_gradients(accelerator, sync: bool) -> None:
    """Whether the next backward pass ends a gradient accumulation (DDP all-reduces, DeepSpeed steps there).

    Through ``Accelerator.sync_gradients``'s setter where it has one; through the private
    ``gradient_state._set_sync_gradients`` on XLA (which needs its step marked) and on anything without the setter
    (an older accelerate, a stand-in)."""
    setter = getattr(type(accelerator), "sync_gradients", None)
    public = isinstance(setter, property) and setter.fset is not None
    if public and getattr(accelerator, "distributed_type", None) != "XLA":  # DistributedType is a str enum
        accelerator.sync_gradients = sync
    else:
        accelerator.gradient_state._set_sync_gradients(sync)
