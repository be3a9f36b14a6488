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


def crop_window(theta: torch.Tensor, size: int, height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """``theta`` restricted to a random size x size window of its output, at whole-pixel offsets: the warp
    and the crop stay one sampling step (the crop of the warped image, not a second resampling)."""
    n = len(theta)
    if size > min(height, width):
        raise ValueError(f"augment crop {size} is larger than the {height}x{width} images")
    top = torch.randint(0, height - size + 1, (n,), generator=g, device=g.device).to(theta.device, theta.dtype)
    left = torch.randint(0, width - size + 1, (n,), generator=g, device=g.device).to(theta.device, theta.dtype)
    sx, sy = size / width, size / height
    # a window pixel's normalized coordinate u maps to the full output's s * u + t
    tx, ty = (2 * left + size) / width - 1, (2 * top + size) / height - 1
    a = theta[:, :, :2]
    t = torch.stack([tx, ty], 1).unsqueeze(-1)
    return torch.cat([a * torch.tensor([sx, sy], dtype=theta.dtype, device=theta.device), a @ t + theta[:, :, 2:]], 2)


def random_erase(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """torchvision's RandomErasing per image with probability ``p`` (area 2-33 %, log-uniform aspect
    0.3-3.3, value 0), batched as one mask; a box that does not fit is clipped to the image."""
    n, _, h, w = x.shape
    dev = g.device
    area = _uniform(n, 0.02, 0.33, g, dev) * h * w
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(1 / 0.3), g, dev))
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = (torch.rand(n, generator=g, device=dev) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=g, device=dev) * (w - ew + 1)).floor()
    on = torch.rand(n, generator=g, device=dev) < p
    rows, cols = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
    box = (rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1)) & \
          (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)) & on.view(n, 1, 1)
    return x.masked_fill(box.unsqueeze(1).to(x.device), 0.0)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Augment a float batch (N, C, H, W) in one warp (then random erasing); returns a new tensor, of the
    same shape unless ``cfg.crop`` cuts it to crop x crop."""
    if not cfg.active or len(x) == 0:
        return x
    n, c, h, w = x.shape
    theta = random_affine(n, cfg, g, g.device).to(x.device, x.dtype)
    out = [n, c, h, w]
    if cfg.crop:
        theta, out = crop_window(theta, cfg.crop, h, w, g), [n, c, cfg.crop, cfg.crop]
    grid = clamp_to_border(F.affine_grid(theta, out, align_corners=False), h, w)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return random_erase(y, cfg.erase, g) if cfg.erase else y


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
