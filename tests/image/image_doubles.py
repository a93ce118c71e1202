"""Tiny image models the tests build themselves (random weights, seconds to run): none of the bundled training."""

from __future__ import annotations

import pytest
import torch

from dopsd.image.classifier import DigitStyleClassifier
from dopsd.image.model import create_image_model


def tiny_model(seed: int = 0):
    model = create_image_model(seed=seed, width=16, depth=1, heads=2)
    with torch.no_grad():  # the output layer starts at zero: give it weights so that inputs matter
        torch.nn.init.normal_(model.patch_out.weight, std=0.2, generator=torch.Generator().manual_seed(seed))
    return model


def tiny_classifier(seed: int = 0):
    torch.manual_seed(seed)
    return DigitStyleClassifier(channels=4, features=8).eval()


def small_config(config_class, tmp_path, **changes):
    values = dict(output_dir=str(tmp_path / "run"), max_updates=2, batch_size=4, target_images=5, eval_every=100,
                  eval_samples_per_prompt=1, eval_many_steps=6, save_every=100, progress=False, report_to=["none"],
                  learning_rate=1e-3)
    return config_class(**{**values, **changes})


# Fixtures (a test module imports the ones it uses: a conftest.py here would shadow tests/conftest.py's helpers).
# Each is registered under its short name but defined under another, so that a test's parameter of that name does
# not redefine the imported function.
@pytest.fixture(name="model_folder")
def model_folder_fixture(tmp_path):
    folder = tmp_path / "tiny-model"
    tiny_model().save_pretrained(folder)
    return folder


@pytest.fixture(name="classifier_folder")
def classifier_folder_fixture(tmp_path):
    folder = tmp_path / "tiny-classifier"
    tiny_classifier().save_pretrained(folder)
    return folder
