"""Procedurally drawn 48x48 grayscale expression faces, so tests and the demo need no download.

Each class moves a few facial parameters away from a neutral face (mouth curvature, openness and
width, brow angle and height, eye opening, asymmetry). Every sample draws an expression intensity
in [0.1, 1.0], plus pose, scale, lighting and sensor noise: weak expressions look alike and
neighbour classes overlap, so a small CNN clearly beats chance without reaching 100%.
"""
from __future__ import annotations

import numpy as np

from .. import CLASSES
from ..errors import DataError
from .dataset import FERData
from .registry import register_source

# Deviation from the neutral face per class:
# curve, open, width, brow_angle, brow_raise, eye_open, asym
_EXPR = {
    "angry":    (-0.4, 0.15, 0.0, 0.9, -1.0, -0.25, 0.0),
    "disgust":  (-0.6, 0.10, -0.1, 0.5, -0.5, -0.35, 0.8),
    "fear":     (-0.3, 0.55, 0.3, -0.6, 1.5, 0.35, 0.0),
    "happy":    (1.2, 0.25, 0.25, 0.0, 0.3, -0.25, 0.0),
    "sad":      (-1.0, 0.0, -0.1, -0.8, 0.5, -0.15, 0.0),
    "surprise": (0.0, 1.0, -0.35, -0.2, 2.5, 0.5, 0.0),
    "neutral":  (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
}
# FER2013 training-set class shares, so the synthetic set is imbalanced the same way.
_SHARE = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965], dtype=float)
_SHARE /= _SHARE.sum()
_USAGE_SHARE = (("Training", 0.8), ("PublicTest", 0.1), ("PrivateTest", 0.1))


def _render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    col = lambda v: v.reshape(n, 1, 1)  # noqa: E731
    expr = np.array([_EXPR[c] for c in CLASSES])[labels]  # (n, 7)
    k = rng.uniform(0.1, 1.0, n)[:, None]  # expression intensity
    curve, mopen, width, bangle, braise, eopen, asym = (col(v) for v in (expr * k).T)
    s = col(rng.uniform(0.88, 1.12, n))
    cx = col(24 + rng.normal(0, 1.5, n))
    cy = col(25 + rng.normal(0, 1.5, n))
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    yy, xx = yy[None], xx[None]

    bg = col(rng.uniform(20, 110, n))
    skin = col(rng.uniform(140, 215, n))
    r = ((xx - cx) / (16 * s)) ** 2 + ((yy - cy) / (20 * s)) ** 2
    face = 1 / (1 + np.exp((r - 1) * 12))
    img = bg + (skin - bg) * face
    dark = skin * 0.25

    def paint(mask, level):
        nonlocal img
        img = img * (1 - mask) + level * mask

    # eyes
    for side in (-1, 1):
        ex, ey = cx + side * 6.5 * s, cy - 4 * s
        er = ((xx - ex) / (2.6 * s)) ** 2 + ((yy - ey) / (1.4 * s * (1 + eopen))) ** 2
        paint(np.clip(1.5 - er * 1.5, 0, 1), dark)
        # brows: the inner end drops for positive angle (anger), rises for negative (sadness)
        t = np.clip((xx - cx) * side / s - 2.5, 0, 8) / 8  # 0 inner .. 1 outer
        inside = ((xx - cx) * side / s > 2.5) & ((xx - cx) * side / s < 10.5)
        by = cy - 9.5 * s - braise + bangle * 2.2 * (1 - t)
        paint(inside * np.clip(1.2 - np.abs(yy - by), 0, 1), dark)
    # nose
    paint(((np.abs(xx - cx) < 0.7) & (yy > cy - 2 * s) & (yy < cy + 3 * s)) * 0.5, dark)
    # mouth: a parabola whose ends rise with positive curvature; open mouths are filled
    w = 7 * s * (1 + width)
    u = (xx - cx) / w
    my = cy + 10 * s - curve * 2.5 * (u ** 2 - 0.3) + asym * 2.0 * u
    on_mouth = np.abs(u) < 1
    paint(on_mouth * np.clip(1.3 - np.abs(yy - my), 0, 1), dark)
    h = mopen * 3.2 * s * np.sqrt(np.clip(1 - u ** 2, 0, 1))
    paint(on_mouth * ((yy - my) > -0.5) * ((yy - my) < h) * (mopen > 0.05), dark * 0.6)

    light = 1 + col(rng.uniform(-0.35, 0.35, n)) * (xx - 24) / 24
    img = img * light + rng.normal(0, col(rng.uniform(4, 16, n)), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic(n: int = 3500, seed: int = 0) -> FERData:
    """``n`` synthetic faces with FER2013-like class shares and an 80/10/10 usage split."""
    if n < len(CLASSES) * 10:
        raise ValueError(f"synthetic data needs n >= {len(CLASSES) * 10} (10 per class); got {n}")
    rng = np.random.default_rng(seed)
    per_class = np.maximum(10, np.round(_SHARE * n).astype(int))
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    rng.shuffle(labels)
    usage = np.empty(len(labels), dtype="<U11")
    for c in range(len(CLASSES)):  # split each class 80/10/10 so every split has every class
        idx = np.flatnonzero(labels == c)
        cut1, cut2 = int(len(idx) * 0.8), int(len(idx) * 0.9)
        usage[idx[:cut1]], usage[idx[cut1:cut2]], usage[idx[cut2:]] = (u for u, _ in _USAGE_SHARE)
    images = np.concatenate([_render(labels[i:i + 1024], rng) for i in range(0, len(labels), 1024)])
    ids = np.array([f"{u}_synthetic{i:06d}" for i, u in enumerate(usage)])
    return FERData(images, labels, ids, usage, source=f"synthetic:{n}:{seed}", dataset="synthetic")


def read_synthetic(spec: str, *, skip_bad: bool = False, progress=None) -> FERData:
    """``synthetic[:N[:SEED]]``: N drawn faces (default 3,500) from SEED (default 0)."""
    parts = spec.split(":")
    try:
        n = int(parts[1]) if len(parts) > 1 else 3500
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise DataError(f"bad synthetic spec {spec!r}: use synthetic[:N[:SEED]]") from None
    return make_synthetic(n, seed)


register_source("synthetic", read_synthetic, prefix="synthetic")
