"""Test-time augmentation: a model scored on several views of each image, their probabilities averaged.

``flip``: the image and its horizontal mirror (2 views). ``tencrop``: torchvision's ten-crop -- the
four corner crops and the centre crop of ``crop`` pixels, and the same five of the mirrored image
(10 views), as Khaireddin & Chen's evaluation does (github.com/usef-kh/fer, data/fer2013.py). The
crops go to the model as they are; its input adapter resizes them to its own input size.
"""
from __future__ import annotations

from typing import Callable

import torch

TTA_VIEWS = {"none": 1, "flip": 2, "tencrop": 10}


def crop_boxes(height: int, width: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the five crops: top-left, top-right, bottom-left, bottom-right, centre
    (torchvision's five_crop order and rounding)."""
    if crop > min(height, width):
        raise ValueError(f"tta_crop {crop} is larger than the {height}x{width} images")
    bottom, right = height - crop, width - crop
    return [(0, 0), (0, right), (bottom, 0), (bottom, right),
            (int(round(bottom / 2.0)), int(round(right / 2.0)))]


def views(mode: str, height: int, width: int, crop: int) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The functions that make each view of an (N, C, H, W) batch."""
    def mirror(x):
        return torch.flip(x, dims=[-1])

    if mode == "none":
        return [lambda x: x]
    if mode == "flip":
        return [lambda x: x, mirror]
    if mode == "tencrop":
        five = [lambda x, t=t, left=left: x[..., t:t + crop, left:left + crop]
                for t, left in crop_boxes(height, width, crop)]
        return five + [lambda x, f=f: f(mirror(x)) for f in five]
    raise ValueError(f"tta must be one of {', '.join(TTA_VIEWS)}; got {mode!r}")


def average(per_view: list[torch.Tensor], to_probabilities: Callable[[torch.Tensor], torch.Tensor],
            mean: str = "probabilities") -> torch.Tensor:
    """Class probabilities from each view's model outputs: the mean of the views' probabilities, or
    (``mean='logits'``) the probabilities of the mean output."""
    if mean == "logits":
        return to_probabilities(torch.stack(per_view).mean(0))
    return torch.stack([to_probabilities(s) for s in per_view]).mean(0)
