"""Fixtures of the image tests: tiny models saved in save_pretrained form."""

import pytest

from image_doubles import tiny_classifier, tiny_model


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "tiny-model"
    tiny_model().save_pretrained(folder)
    return folder


@pytest.fixture
def classifier_folder(tmp_path):
    folder = tmp_path / "tiny-classifier"
    tiny_classifier().save_pretrained(folder)
    return folder
