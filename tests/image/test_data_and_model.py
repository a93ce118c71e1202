"""The digits, their styles and prompts; the in-context model's inputs and save_pretrained round trip."""

import pytest
import torch
from image_doubles import tiny_model

from dopsd.errors import DopsdError
from dopsd.image.data import (
    BASE_STYLES,
    NEW_STYLES,
    STYLES,
    digit_set,
    encode_prompt,
    reference_for,
    split_indices,
    stylise,
    target_images,
)
from dopsd.image.model import InContextImageModel


def test_splits_are_disjoint_fixed_and_cover_the_dataset():
    train, heldout = split_indices("train"), split_indices("heldout")
    assert not set(train) & set(heldout) and len(train) + len(heldout) == 1797
    assert split_indices("train") == train


def test_every_style_is_deterministic_in_range_and_distinct():
    images = digit_set("heldout", STYLES)
    assert images.images.min() >= -1 and images.images.max() <= 1
    assert torch.equal(images.images, digit_set("heldout", STYLES).images)
    plain = images.images[images.styles == 0]
    for index, style in enumerate(STYLES[1:], start=1):
        assert not torch.equal(images.images[images.styles == index], plain), style
    assert set(NEW_STYLES).isdisjoint(BASE_STYLES)


def test_prompts_read_words_and_refuse_others():
    assert encode_prompt("digit 3") == [1, 5, 0]
    with pytest.raises(DopsdError, match="cannot read prompt"):
        encode_prompt("digit 3 wavy")
    with pytest.raises(DopsdError, match="unknown style"):
        stylise(digit_set("heldout", ("plain",)).images[0, 0].numpy(), "wavy")


def test_target_images_are_a_handful_spread_over_digits_in_the_concept():
    targets = target_images("framed", 10, seed=0)
    assert sorted(targets.digits.tolist()) == list(range(10))
    assert set(targets.styles.tolist()) == {STYLES.index("framed")}
    assert not torch.equal(target_images("framed", 10, seed=1).images, targets.images)


def test_references_share_digit_and_style_but_are_other_images():
    data = digit_set("heldout", ("plain", "thick"))
    references = reference_for(data, torch.Generator().manual_seed(0))
    assert torch.equal(data.digits[references], data.digits) and torch.equal(data.styles[references], data.styles)
    assert (references != torch.arange(len(data))).all()


def test_a_hidden_context_is_the_same_computation_as_none_and_a_seen_one_matters():
    model = tiny_model()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([900.0, 500.0, 10.0])
    prompts, context = torch.tensor([encode_prompt("digit 3")] * 3), torch.randn(3, 1, 8, 8)
    alone = model(x, t, prompts)
    hidden = model(x, t, prompts, context=context, context_mask=torch.zeros(3, dtype=torch.bool))
    seen = model(x, t, prompts, context=context, context_mask=torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(hidden, alone)
    torch.testing.assert_close(model(x, t, prompts, context=context), seen)
    assert not torch.allclose(seen, alone)


def test_save_pretrained_round_trip(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    loaded = InContextImageModel.from_pretrained(tmp_path / "m")
    x, t, prompts = torch.randn(2, 1, 8, 8), torch.tensor([700.0, 300.0]), torch.tensor([[1, 2, 0], [1, 3, 12]])
    assert torch.equal(model(x, t, prompts), loaded(x, t, prompts))
    assert loaded.config.width == 16
