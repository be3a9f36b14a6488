"""Batched on-device augmentation: one affine warp for the whole batch, per-sample random parameters.

Rotation, shift, zoom, shear, horizontal flip and random resized crop (the transforms the studies
used through Keras' ImageDataGenerator / torchvision) are composed into one 2x3 matrix per sample
and applied with ``affine_grid`` + ``grid_sample``; out-of-image pixels repeat the border, as
Keras' default ``fill_mode='nearest'`` does. Randomness comes from an explicit, seeded generator;
the parameters are drawn where that generator lives (the engine's is a CPU one, so one seed gives the
same warps on CPU, CUDA and MPS) and then moved to the images' device.
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from .schema.train import AugmentConfig


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def random_affine(n: int, cfg: AugmentConfig, g: torch.Generator, device) -> torch.Tensor:
    """(n, 2, 3) matrices in affine_grid's normalized coordinates (output -> input sampling)."""
    ang = _uniform(n, -cfg.rotation, cfg.rotation, g, device) * (math.pi / 180)
    shear = _uniform(n, -cfg.shear, cfg.shear, g, device) * (math.pi / 180)
    sx = sy = torch.ones(n, device=device)
    tx = _uniform(n, -cfg.shift, cfg.shift, g, device) * 2
    ty = _uniform(n, -cfg.shift, cfg.shift, g, device) * 2
    if cfg.zoom:  # Keras' zoom_range draws the width and the height zoom independently
        sx = _uniform(n, 1 - cfg.zoom, 1 + cfg.zoom, g, device)
        sy = _uniform(n, 1 - cfg.zoom, 1 + cfg.zoom, g, device)
    if cfg.crop_scale:
        area = _uniform(n, cfg.crop_scale[0], cfg.crop_scale[1], g, device)
        logr = _uniform(n, math.log(3 / 4), math.log(4 / 3), g, device)
        w = torch.sqrt(area * torch.exp(logr)).clamp(max=1)
        h = torch.sqrt(area / torch.exp(logr)).clamp(max=1)
        sx, sy = sx * w, sy * h
        tx = tx + (torch.rand(n, generator=g, device=device) * 2 - 1) * (1 - w)
        ty = ty + (torch.rand(n, generator=g, device=device) * 2 - 1) * (1 - h)
    if cfg.flip:
        sx = sx * torch.where(torch.rand(n, generator=g, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([
        torch.stack([cos * sx, -sin * sy + torch.tan(shear) * sy, tx], dim=1),
        torch.stack([sin * sx, cos * sy, ty], dim=1),
    ], dim=1)
    return theta


def clamp_to_border(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Sampling positions clamped to the outermost pixel centres (align_corners=False coordinates).
    Bilinear sampling of the clamped grid with zero padding equals ``padding_mode='border'`` (which
    clamps the same way), and needs no border mode: MPS lacks it in the torch versions ferbench allows."""
    lim = torch.tensor([1 - 1 / width, 1 - 1 / height], dtype=grid.dtype, device=grid.device)
    return torch.maximum(torch.minimum(grid, lim), -lim)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Augment a float batch (N, C, H, W) in one warp; returns a new tensor of the same shape."""
    if not cfg.active or len(x) == 0:
        return x
    theta = random_affine(len(x), cfg, g, g.device).to(x.device, x.dtype)
    grid = clamp_to_border(F.affine_grid(theta, list(x.shape), align_corners=False), x.shape[-2], x.shape[-1])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_uint8(images, cfg: AugmentConfig, seed: int, batch: int = 4096):
    """Augment a uint8 (N, H, W) numpy array on the CPU, deterministically; returns uint8 numpy."""
    import numpy as np

    g = torch.Generator().manual_seed(seed)
    out = np.empty_like(images)
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).float().unsqueeze(1)
        y = augment_batch(x, cfg, g)
        out[i:i + batch] = y.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()
    return out
