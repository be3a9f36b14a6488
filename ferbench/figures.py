"""Matplotlib figures for reports (PNG files; the HTML report embeds them)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def class_distribution(counts: dict[str, dict[str, int]], classes, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3))
    width = 0.8 / max(len(counts), 1)
    x = np.arange(len(classes))
    for i, (part, c) in enumerate(counts.items()):
        ax.bar(x + i * width, [c.get(k, 0) for k in classes], width, label=part)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, classes, rotation=30)
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax.set_title("Class distribution")
    return _save(fig, path)


def sample_grid(images: np.ndarray, labels: np.ndarray, classes, path: Path, per_class: int = 6,
                captions: list[list[str]] | None = None, title: str = "") -> Path:
    """One row per class; ``captions`` (optional) gives one text line per shown image."""
    rows = [np.flatnonzero(labels == c)[:per_class] for c in range(len(classes))]
    cols = max(1, max(len(r) for r in rows))
    fig, axes = plt.subplots(len(classes), cols, figsize=(cols * 1.25, len(classes) * (1.55 if captions else 1.3)),
                             squeeze=False)
    for ci, r in enumerate(rows):
        for j in range(cols):
            ax = axes[ci][j]
            ax.axis("off")
            if j < len(r):
                ax.imshow(images[r[j]], cmap="gray", vmin=0, vmax=255)
                if captions:
                    ax.set_title(captions[r[j]], fontsize=5.5)
        axes[ci][0].text(-8, 24, classes[ci], ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, y=1.0)
    fig.subplots_adjust(top=0.95 if title else 1.0)
    return _save(fig, path)


def confusion(cm: np.ndarray, classes, path: Path, title: str) -> Path:
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    return _save(fig, path)


def prf_bars(per_class: dict, classes, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 2.6))
    x = np.arange(len(classes))
    for i, k in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (i - 1) * 0.27, per_class[k], 0.27, label=k)
    ax.set_xticks(x, classes, rotation=30, fontsize=7)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title(title, fontsize=8)
    return _save(fig, path)


def curves(histories: dict[str, list[dict]], path: Path, title: str) -> Path:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 2.8))
    for name, h in histories.items():
        ep = [r["epoch"] for r in h]
        # markers keep one-epoch runs visible
        (line,) = a1.plot(ep, [r["train_accuracy"] for r in h], "o-", ms=3, label=f"{name} train")
        if "val_accuracy" in h[0]:
            a1.plot(ep, [r["val_accuracy"] for r in h], "s--", ms=3, color=line.get_color(), label=f"{name} val")
        a2.plot(ep, [r["train_loss"] for r in h], "o-", ms=3, color=line.get_color())
        if "val_loss" in h[0]:
            a2.plot(ep, [r["val_loss"] for r in h], "s--", ms=3, color=line.get_color())
    a1.set_title("accuracy (solid: train, dashed: val)", fontsize=8)
    a2.set_title("loss", fontsize=8)
    a1.set_xlabel("epoch")
    a2.set_xlabel("epoch")
    a1.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def gradcam_grid(images: np.ndarray, cams: np.ndarray, labels, preds, classes, path: Path, title: str) -> Path:
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(n * 1.2, 3.0), squeeze=False)
    for i in range(n):
        axes[0][i].imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes[0][i].set_title(f"{classes[labels[i]]}\n→{classes[preds[i]]}", fontsize=6)
        axes[1][i].imshow(images[i], cmap="gray", vmin=0, vmax=255)
        axes[1][i].imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[0][i].axis("off")
        axes[1][i].axis("off")
    fig.suptitle(title, fontsize=8, y=1.04)  # above the two-line captions
    return _save(fig, path)
