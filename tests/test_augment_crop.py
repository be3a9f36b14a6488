"""Random crop at the image's own scale, random erasing and Nesterov SGD (Khaireddin & Chen's recipe)."""
from __future__ import annotations

import pytest
import torch

from ferbench.augment import augment_batch
from ferbench.engine import build_optimizer
from ferbench.models import create_model
from ferbench.schema.train import AugmentConfig, TrainConfig


def test_crop_is_a_whole_pixel_window_of_the_image():
    x = torch.arange(48 * 48.0).view(1, 1, 48, 48).repeat(16, 1, 1, 1)
    y = augment_batch(x, AugmentConfig(crop=40), torch.Generator().manual_seed(0))
    assert y.shape == (16, 1, 40, 40)
    offsets = set()
    for i in range(16):
        r = int(y[i, 0, 0, 0].round())
        top, left = divmod(r, 48)
        assert top <= 8 and left <= 8
        assert torch.allclose(y[i, 0], x[0, 0, top:top + 40, left:left + 40], atol=1e-3)
        offsets.add((top, left))
    assert len(offsets) > 4  # random per image


def test_crop_composes_with_the_flip_in_one_sampling_step():
    x = torch.arange(48 * 48.0).view(1, 1, 48, 48).repeat(32, 1, 1, 1)
    y = augment_batch(x, AugmentConfig(crop=40, flip=True), torch.Generator().manual_seed(1))
    flipped = [bool(y[i, 0, 0, 0] > y[i, 0, 0, 1]) for i in range(32)]
    assert any(flipped) and not all(flipped)
    assert torch.allclose(y.round(), y, atol=1e-3)  # still whole pixels: no second resampling


def test_crop_larger_than_the_image_fails_clearly():
    with pytest.raises(ValueError, match="augment crop 50 is larger than the 48x48 images"):
        augment_batch(torch.ones(2, 1, 48, 48), AugmentConfig(crop=50), torch.Generator())


def test_random_erasing_rate_and_box_size():
    g = torch.Generator().manual_seed(0)
    y = augment_batch(torch.ones(2000, 1, 48, 48), AugmentConfig(erase=0.5), g)
    erased = (y.view(2000, -1) == 0).float().mean(1)
    assert 0.45 < (erased > 0).float().mean() < 0.55
    hit = erased[erased > 0]
    assert hit.min() >= 0.015 and hit.max() <= 0.34 and 0.1 < hit.mean() < 0.2
    assert torch.equal(augment_batch(torch.ones(4, 1, 48, 48), AugmentConfig(erase=0.0, flip=False),
                                     g), torch.ones(4, 1, 48, 48))


def test_nesterov_reaches_the_optimizer():
    m = create_model("mlp")
    assert build_optimizer(m, TrainConfig(optimizer="sgd", nesterov=True)).param_groups[0]["nesterov"] is True
    assert build_optimizer(m, TrainConfig(optimizer="sgd")).param_groups[0]["nesterov"] is False
