"""A checkpoint that pickled a class under a name since renamed still loads (``checkpoint.RENAMED``)."""

import dataclasses

import torch

from dopsd.trainers import checkpoint


@dataclasses.dataclass
class RenamedRollout:
    samples: int


def test_a_class_pickled_under_its_old_name_loads_under_the_new_one(tmp_path, monkeypatch):
    path = tmp_path / "trainer_state.pt"
    torch.save({"rollout": RenamedRollout(7)}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes().replace(b"RenamedRollout", b"OldRollout"))  # as written before the rename
    monkeypatch.setitem(checkpoint.RENAMED, (__name__, "OldRollout"), "RenamedRollout")
    assert checkpoint.load_pickled(path) == {"rollout": RenamedRollout(7)}


def test_the_renamed_trainer_classes_map_to_classes_that_exist():
    import importlib

    for (module, old), new in checkpoint.RENAMED.items():
        assert not hasattr(importlib.import_module(module), old) and hasattr(importlib.import_module(module), new)
