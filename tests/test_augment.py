"""Augmentation geometry: a known rotation, shift or flip moves a marked pixel where it should."""
import numpy as np
import pytest
import torch

import ferbench.augment as augment
from ferbench.schema.train import AugmentConfig


def _spot(row: int, col: int) -> torch.Tensor:
    x = torch.zeros(1, 1, 48, 48)
    x[0, 0, row - 1:row + 2, col - 1:col + 2] = 1.0  # a 3x3 bright spot (bilinear sampling keeps it visible)
    return x


def _where(x: torch.Tensor) -> tuple[float, float]:
    img = x[0, 0].numpy()
    rows, cols = np.nonzero(img > 0.5 * img.max())
    return rows.mean(), cols.mean()


@pytest.fixture
def extreme(monkeypatch):
    """Every random draw takes its upper bound, so the warp is known exactly."""
    monkeypatch.setattr(augment, "_uniform", lambda n, lo, hi, g, device: torch.full((n,), float(hi), device=device))


def test_shift_moves_content_by_the_fraction_of_the_image(extreme):
    out = augment.augment_batch(_spot(24, 24), AugmentConfig(shift=0.25), torch.Generator())
    r, c = _where(out)
    assert (r, c) == pytest.approx((24 - 12, 24 - 12), abs=0.6)  # +25 % sampling offset: content moves 12 px


def test_rotation_by_90_degrees_turns_a_right_spot_into_an_upper_one(extreme):
    out = augment.augment_batch(_spot(24, 36), AugmentConfig(rotation=90), torch.Generator())
    # the image centre is (23.5, 23.5): the spot 12.5 px right of it (0.5 below) ends 12.5 px above it
    assert _where(out) == pytest.approx((23.5 - 12.5, 23.5 + 0.5), abs=0.6)


def test_flip_mirrors_left_and_right(monkeypatch):
    monkeypatch.setattr(torch, "rand", lambda n, generator=None, device=None: torch.zeros(n))  # always flip
    out = augment.augment_batch(_spot(10, 8), AugmentConfig(flip=True), torch.Generator())
    assert _where(out) == pytest.approx((10, 39), abs=0.6)


def test_keras_zoom_draws_width_and_height_independently():
    theta = augment.random_affine(4000, AugmentConfig(zoom=0.15), torch.Generator().manual_seed(0), "cpu")
    sx, sy = theta[:, 0, 0].numpy(), theta[:, 1, 1].numpy()
    assert sx.min() >= 0.85 - 1e-6 and sx.max() <= 1.15 + 1e-6 and sy.min() >= 0.85 - 1e-6
    assert abs(np.corrcoef(sx, sy)[0, 1]) < 0.05


def test_same_seed_same_batch_and_identity_without_augmentation():
    x = torch.rand(8, 1, 48, 48)
    cfg = AugmentConfig(rotation=15, shift=0.1, zoom=0.1, shear=5, flip=True)
    a = augment.augment_batch(x, cfg, torch.Generator().manual_seed(3))
    b = augment.augment_batch(x, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert augment.augment_batch(x, AugmentConfig(), torch.Generator()) is x
