"""The few-step sampler (seeded, diffusers' Euler scheduler) and the metrics."""

import numpy as np
import pytest
import torch
from image_doubles import tiny_classifier, tiny_model

from dopsd.errors import DopsdError
from dopsd.image.data import encode_prompts
from dopsd.image.metrics import Judge, evaluate_generator, frechet_distance
from dopsd.image.sampler import make_scheduler, sample_images


def test_four_steps_are_four_equal_euler_steps_from_noise_to_image():
    scheduler = make_scheduler(4)
    assert scheduler.sigmas.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert scheduler.timesteps.tolist() == [1000.0, 750.0, 500.0, 250.0]
    with pytest.raises(DopsdError):
        make_scheduler(0)


def test_the_sampler_is_deterministic_under_a_seed_and_records_its_states():
    model = tiny_model()
    prompts = encode_prompts(["digit 3", "digit 7 framed"])
    first = sample_images(model, prompts, 4, torch.Generator().manual_seed(5))
    second = sample_images(model, prompts, 4, torch.Generator().manual_seed(5))
    other = sample_images(model, prompts, 4, torch.Generator().manual_seed(6))
    assert torch.equal(first.images, second.images) and not torch.equal(first.images, other.images)
    assert len(first.states) == 4 and first.dts == [-0.25] * 4
    # each recorded state is the previous one plus dt times the model's velocity there
    with torch.no_grad():
        velocity = model(first.states[2], first.timesteps[2], prompts)
    torch.testing.assert_close(first.states[3], first.states[2] - 0.25 * velocity)


def test_frechet_distance_is_zero_for_one_set_and_the_mean_gap_for_a_shift():
    rows = np.random.default_rng(0).normal(size=(500, 4))
    assert abs(frechet_distance(rows, rows)) < 1e-8
    assert frechet_distance(rows, rows + 2.0) == pytest.approx(16.0, rel=1e-6)


def test_evaluation_is_seeded_and_in_range():
    judge, model = Judge(tiny_classifier()), tiny_model()
    first = evaluate_generator(model, judge, "framed", 2, samples_per_prompt=1)
    assert first == evaluate_generator(model, judge, "framed", 2, samples_per_prompt=1)
    assert 0 <= first["fidelity"] <= 1 and 0 <= first["retained_accuracy"] <= 1 and first["frechet"] >= 0
