"""Matplotlib figures for reports (PNG files; the HTML report embeds them)."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_write_bytes  # noqa: E402


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _save(fig, path: Path | None) -> Path | bytes:
    """Write the figure atomically to ``path``, or return its PNG bytes when ``path`` is None."""
    data = png(fig)
    if path is None:
        return data
    atomic_write_bytes(path, data)
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


def confusion(cm: np.ndarray, classes, path: Path, title: str, no_answer: bool = False) -> Path:
    """Counts in the cells, colour = share of the true class (row); an extra last column counts
    answers that named no class (LLMs), so each row sums to the images of its class."""
    cols = list(classes) + (["no answer"] if no_answer else [])
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.2 + 0.45 * no_answer, 3.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(cols)):
            ax.text(j, i, f"{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    if no_answer:
        ax.axvline(len(classes) - 0.5, color="#64748b", lw=1)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.ax.tick_params(labelsize=6)
    cb.set_label("share of the true class", fontsize=6)
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


def thumbnail_png(img: np.ndarray) -> bytes:
    """One 48x48 grayscale image as a PNG (shown enlarged, pixelated, in the HTML sample grid)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def gradcam_grid(images: np.ndarray, cams: np.ndarray, labels, preds, classes, path: Path | None, title: str):
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
