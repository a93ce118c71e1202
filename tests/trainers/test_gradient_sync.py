"""The accumulation boundary goes through accelerate's public setter where there is one, else the private call."""

from types import SimpleNamespace

from accelerate import Accelerator
from accelerate.utils import DistributedType

from dopsd.trainers.gradient_sync import set_sync_gradients


def test_a_real_accelerator_is_set_through_its_public_setter():
    accelerator = Accelerator()
    try:
        set_sync_gradients(accelerator, False)
        assert accelerator.sync_gradients is False and accelerator.gradient_state.sync_gradients is False
    finally:
        set_sync_gradients(accelerator, True)
    assert accelerator.gradient_state.sync_gradients is True


class Recorder:
    def __init__(self, distributed_type):
        self.distributed_type, self.public, self.private = distributed_type, [], []
        self.gradient_state = SimpleNamespace(_set_sync_gradients=self.private.append)

    sync_gradients = property(lambda self: None, lambda self, value: self.public.append(value))


def test_xla_and_accelerators_without_the_setter_take_the_private_call():
    plain = Recorder(DistributedType.MULTI_GPU)
    set_sync_gradients(plain, False)
    assert (plain.public, plain.private) == ([False], [])
    xla = Recorder(DistributedType.XLA)  # the private call also marks an XLA step
    set_sync_gradients(xla, False)
    assert (xla.public, xla.private) == ([], [False])
    seen = []
    set_sync_gradients(SimpleNamespace(gradient_state=SimpleNamespace(_set_sync_gradients=seen.append)), True)
    assert seen == [True]
