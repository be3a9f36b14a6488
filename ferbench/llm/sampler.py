"""Stratified, deterministic image samples (the LLM study's 5 images per class)."""
from __future__ import annotations

import numpy as np


def stratified_sample(labels: np.ndarray, ids: np.ndarray, per_class: int | None, seed: int,
                      num_classes: int) -> tuple[np.ndarray, list[str]]:
    """Indices of ``per_class`` images of every class (all images if None), ordered by class then id.

    The draw depends only on (labels, ids, per_class, seed): images are first ordered by id, so the
    same dataset gives the same sample whatever order it was loaded in. Returns (indices, notes).
    """
    rng = np.random.default_rng(seed)
    notes, picked = [], []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.argsort(ids[idx], kind="stable")]
        if per_class is None:
            picked.append(idx)
            continue
        if len(idx) < per_class:
            notes.append(f"class {c} has only {len(idx)} images; all used")
            picked.append(idx)
        else:
            picked.append(np.sort(rng.choice(idx, size=per_class, replace=False)))
    out = np.concatenate(picked) if picked else np.zeros(0, dtype=int)
    return out.astype(int), notes
