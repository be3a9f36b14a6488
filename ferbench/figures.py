"""Matplotlib figures for reports: a PNG for the report (the HTML report embeds it), and the same figure
redrawn for a paper as vector PDF and SVG under ``figures/paper/``: ``<name>_column`` 3.5 in wide (one
column of a two-column paper) and ``<name>_page`` 7 in wide, in a serif text face (STIX, Times-like, as
most paper templates) with Computer Modern mathtext, TrueType fonts embedded in the PDF (no Type 3),
and no TeX installation needed to draw them.

Every PNG is drawn on one canvas (``SIZE``) and saved at exactly that size, so the report's two-column
figure grid lines up row by row whatever mix of figures a study has. Legends sit outside the axes (they
never cover data), and text is sized for the canvas shown at half the page width."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import io
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .atomic import atomic_write_bytes  # noqa: E402
from .errors import StoreError  # noqa: E402

SIZE = (6.4, 4.6)  # inches, every figure
DPI = 125  # 800 x 575 px
RIGHT, WRONG = "#15803d", "#b91c1c"  # the HTML report's colours for right and wrong answers
# Paper variants: (name, width in inches, font scale). 9 pt text on the report's canvas becomes 7.2 pt in
# a column figure (the size of a caption's footnote text) and stays 9 pt across a page.
PAPER_WIDTHS = {"column": (3.5, 0.8), "page": (7.0, 1.0)}
PAPER_RC = {"font.family": ["STIXGeneral", "DejaVu Serif", "DejaVu Sans"], "mathtext.fontset": "cm",
            "axes.formatter.use_mathtext": True, "pdf.fonttype": 42, "svg.fonttype": "path",
            "svg.hashsalt": "ferbench", "axes.unicode_minus": True}
_PAPER: dict = {}  # set while a paper variant is drawn: size, font scale, the files to write


def _size() -> tuple[float, float]:
    return _PAPER.get("size", SIZE)


def _fs(points: float) -> float:
    """A font size on the current canvas (scaled down in a column-wide paper figure)."""
    return points * _PAPER.get("scale", 1.0)


def _figure(**kw):
    return plt.subplots(figsize=_size(), layout="constrained", **kw)


@contextlib.contextmanager
def _paper(width: float, scale: float, stem: Path):
    _PAPER.update(size=(width, width * SIZE[1] / SIZE[0]), scale=scale, stem=stem)
    try:
        with plt.rc_context(PAPER_RC):
            yield
    finally:
        _PAPER.clear()


def _with_paper_variants(widths: tuple[str, ...] = ("column", "page")):
    """After the PNG, draw the figure again at each paper width and write it as PDF and SVG (only when the
    PNG went to a file: a figure returned as bytes is embedded, not published)."""
    def deco(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            path = sig.bind(*args, **kwargs).arguments.get("path")
            if path is None or os.environ.get("FERBENCH_PAPER_FIGURES", "1") == "0":
                return out  # FERBENCH_PAPER_FIGURES=0: PNGs only (the vector variants take most of a render)
            paper = Path(path).parent / "paper"
            if paper.is_symlink() or (paper.exists() and not paper.is_dir()):  # a run folder may be hostile
                raise StoreError(f"{paper} is not a folder of this run folder (a symbolic link or a file); "
                                 "remove it, or use another --results-dir")
            stems = [paper / f"{Path(path).stem}_{name}" for name in widths]
            key = _variant_key(Path(path), widths)
            keyfile = paper / f"{Path(path).stem}.key"
            if _unchanged(keyfile, key, stems):
                return out  # a re-rendered report: the same PNG, so the same PDF and SVG
            for name, stem in zip(widths, stems):
                w, scale = PAPER_WIDTHS[name]
                with _paper(w, scale, stem):
                    fn(*args, **kwargs)
            atomic_write_bytes(keyfile, key.encode())
            return out
        return wrapper
    return deco


def _variant_key(png_path: Path, widths: tuple[str, ...]) -> str:
    """What the paper variants of a figure depend on: its PNG (the same data and titles draw the same
    pixels), the widths, and this module's code and settings."""
    h = hashlib.sha256(png_path.read_bytes())
    h.update(repr((widths, PAPER_WIDTHS, PAPER_RC, matplotlib.__version__)).encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def _unchanged(keyfile: Path, key: str, stems: list[Path]) -> bool:
    try:
        same = keyfile.stat().st_size < 200 and keyfile.read_text() == key
    except (OSError, UnicodeDecodeError):
        return False
    return same and all((s.parent / f"{s.name}.{ext}").is_file() for s in stems for ext in ("pdf", "svg"))


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # no bbox_inches="tight": every PNG keeps the canvas size
    plt.close(fig)
    return buf.getvalue()


def _save(fig, path: Path | None) -> Path | bytes:
    """Write the figure atomically to ``path``, or return its PNG bytes when ``path`` is None; while a
    paper variant is drawn, write its PDF and SVG instead."""
    if "stem" in _PAPER:
        for ext in ("pdf", "svg"):
            buf = io.BytesIO()
            # no creation date in the metadata: the same figure gives the same bytes
            fig.savefig(buf, format=ext, metadata={"CreationDate": None} if ext == "pdf" else {"Date": None})
            atomic_write_bytes(_PAPER["stem"].parent / f"{_PAPER['stem'].name}.{ext}", buf.getvalue())
        plt.close(fig)
        return path
    data = png(fig)
    if path is None:
        return data
    atomic_write_bytes(path, data)
    return path


def _inch_canvas(fig, w: float, h: float):
    """One invisible axes over the whole figure, in inches: a grid of images placed on it draws several
    times faster than one axes per image (each axes builds ticks and layout state even when hidden)."""
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_autoscale_on(False)  # the images' extents must not move the inch grid
    return ax


def _legend_above(ax, title: str, ncol: int) -> None:
    """The legend in one row just above the axes (never on top of the data), the title above it."""
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=ncol, frameon=False, fontsize=_fs(9),
              borderaxespad=0.2)
    ax.set_title(title, fontsize=_fs(11), pad=22)


@_with_paper_variants()
def class_distribution(counts: dict[str, dict[str, int]], classes, path: Path) -> Path:
    fig, ax = _figure()
    parts = list(counts)
    width = 0.84 / max(len(parts), 1)
    x = np.arange(len(classes))
    for i, part in enumerate(parts):
        bars = ax.bar(x + (i - (len(parts) - 1) / 2) * width, [counts[part].get(k, 0) for k in classes], width,
                      label=part)
        # small test-set bars are invisible next to the training set's: their counts say how small
        ax.bar_label(bars, [f"{v:,}" for v in bars.datavalues], fontsize=_fs(6.5), rotation=90, padding=2)
    ax.set_xticks(x, classes, fontsize=_fs(9))
    ax.set_ylabel("images", fontsize=_fs(9))
    ax.tick_params(axis="y", labelsize=_fs(8))
    ax.margins(y=0.16)  # room for the rotated counts above the tallest bar
    ax.spines[["top", "right"]].set_visible(False)
    _legend_above(ax, "Class distribution", len(parts))
    return _save(fig, path)


@_with_paper_variants(("page",))
def sample_grid(images: np.ndarray, labels: np.ndarray, classes, path: Path, per_class: int = 8,
                captions: list[str] | None = None, title: str = "") -> Path:
    """One row per class, the class name at its left; ``captions`` (optional, one per image index) is
    printed under each shown image."""
    rows = [np.flatnonzero(labels == c)[:per_class] for c in range(len(classes))]
    n_rows, n_cols = len(classes), max(1, max(len(r) for r in rows))
    w, h = _size()
    label_w, top, gap = 0.95, (0.42 if title else 0.1), 0.05
    cap_h = 0.17 if captions else 0.0
    cell = min((w - label_w - 0.1) / n_cols - gap, (h - top - 0.1) / n_rows - cap_h - gap)
    row_h = cell + cap_h + gap
    x0 = (w - label_w - n_cols * (cell + gap)) / 2 + label_w  # the block centred on the canvas
    y_top = h - top - (h - top - 0.1 - n_rows * row_h) / 2
    fig = plt.figure(figsize=_size())
    canvas = _inch_canvas(fig, w, h)
    for ci, r in enumerate(rows):
        y = y_top - (ci + 1) * row_h + cap_h + gap / 2  # bottom of this row's images, inches
        fig.text((x0 - 0.12) / w, (y + cell / 2) / h, classes[ci], ha="right", va="center", fontsize=_fs(10))
        if not len(r):
            fig.text((x0 + 0.05) / w, (y + cell / 2) / h, "(no image)", ha="left", va="center", fontsize=_fs(8),
                     color="#64748b")
        for j, idx in enumerate(r):
            x = x0 + j * (cell + gap)
            canvas.imshow(images[idx], cmap="gray", vmin=0, vmax=255, extent=(x, x + cell, y, y + cell), aspect="auto")
            if captions:
                canvas.text(x + cell / 2, y - 0.03 * cell, captions[idx], ha="center", va="top", fontsize=_fs(8))
    if title:
        fig.suptitle(title, fontsize=_fs(11), y=1 - 0.1 / h, va="top")
    return _save(fig, path)


@_with_paper_variants()
def confusion(cm: np.ndarray, classes, path: Path, title: str, no_answer: bool = False) -> Path:
    """Counts in the cells, colour = share of the true class (row); an extra last column counts
    answers that named no class (LLMs), so each row sums to the images of its class."""
    cols = list(classes) + (["no answer"] if no_answer else [])
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = _figure()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    big = cm.max() >= 1000
    for i in range(len(classes)):
        for j in range(len(cols)):
            ax.text(j, i, f"{cm[i, j]:,}", ha="center", va="center", fontsize=_fs(7.5 if big else 9),
                    color="white" if norm[i, j] > 0.5 else "black")
    if no_answer:
        ax.axvline(len(classes) - 0.5, color="#64748b", lw=1.2)
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", fontsize=_fs(9))
    ax.set_yticks(range(len(classes)), classes, fontsize=_fs(9))
    ax.set_xlabel("predicted", fontsize=_fs(9))
    ax.set_ylabel("true", fontsize=_fs(9))
    ax.set_title(title, fontsize=_fs(11))
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.ax.tick_params(labelsize=_fs(8))
    cb.set_label("share of the true class", fontsize=_fs(9))
    return _save(fig, path)


@_with_paper_variants()
def prf_bars(per_class: dict, classes, path: Path, title: str) -> Path:
    fig, ax = _figure()
    x = np.arange(len(classes))
    for i, k in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (i - 1) * 0.27, per_class[k], 0.27, label="F1" if k == "f1" else k)
    support = per_class.get("support")
    ticks = [f"{c}\n{n:,} img" for c, n in zip(classes, support)] if support else list(classes)
    ax.set_xticks(x, ticks, fontsize=_fs(8.5))
    ax.set_ylim(0, 1.04)  # a bar at 1.0 stays whole, below the frame's edge
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.tick_params(axis="y", labelsize=_fs(8))
    ax.grid(axis="y", color="#e2e8f0", lw=0.8)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    _legend_above(ax, title, 3)
    return _save(fig, path)


@_with_paper_variants()
def curves(histories: dict[str, list[dict]], path: Path, title: str) -> Path:
    fig, (a1, a2) = _figure(ncols=2)
    handles = []
    for name, h in histories.items():
        ep = [r["epoch"] for r in h]
        # markers keep one-epoch runs visible
        (line,) = a1.plot(ep, [100 * r["train_accuracy"] for r in h], "o-", ms=3.5)
        c = line.get_color()
        handles.append(Line2D([], [], color=c, lw=2, label=name))
        if h[0].get("val_accuracy") is not None:
            a1.plot(ep, [100 * (r.get("val_accuracy") or np.nan) for r in h], "s--", ms=3.5, color=c)
        a2.plot(ep, [r["train_loss"] for r in h], "o-", ms=3.5, color=c)
        if h[0].get("val_loss") is not None:
            a2.plot(ep, [r.get("val_loss") or np.nan for r in h], "s--", ms=3.5, color=c)
    for ax, what in ((a1, "accuracy %"), (a2, "loss")):
        ax.set_title(what, fontsize=_fs(10))
        ax.set_xlabel("epoch", fontsize=_fs(9))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=_fs(8))
        ax.grid(color="#e2e8f0", lw=0.8)
        ax.spines[["top", "right"]].set_visible(False)
    handles += [Line2D([], [], color="#334155", ls="-", marker="o", ms=3.5, label="train"),
                Line2D([], [], color="#334155", ls="--", marker="s", ms=3.5, label="validation")]
    fig.suptitle(title, fontsize=_fs(11))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False, fontsize=_fs(9))
    return _save(fig, path)


def thumbnail_png(img: np.ndarray) -> bytes:
    """One 48x48 grayscale image as a PNG (shown enlarged, pixelated, in the HTML sample grid)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _pair_layout(n: int, width: float, height: float, cap_h: float, gap: float, pair_gap: float) -> tuple[int, float]:
    """(pairs per row, image side in inches) that makes the largest images: each pair is an image above
    its heat map (``gap`` apart), a caption above the pair, ``pair_gap`` between pairs side by side."""
    best = (n, 0.0)
    for per_row in range(1, n + 1):
        n_rows = math.ceil(n / per_row)
        side = min(width / per_row - pair_gap, (height / n_rows - cap_h) / 2 - gap)
        if side > best[1] + 1e-9:
            best = (per_row, side)
    return best


@_with_paper_variants(("page",))
def gradcam_grid(images: np.ndarray, cams: np.ndarray, labels, preds, classes, path: Path | None, title: str):
    """Each image above its Grad-CAM heat map (the evidence for the predicted class, each map scaled to
    its own maximum), captioned ``true → predicted`` in green (right) or red (wrong); one colour bar."""
    n = len(images)
    w, h = _size()
    left, cbar_w, head, cap_h, gap, pair_gap = 0.3, 1.0, 0.62, 0.36, 0.04, 0.12
    per_row, side = _pair_layout(n, w - left - cbar_w, h - head - 0.08, cap_h, gap, pair_gap)
    side = min(side, 1.3)
    n_rows = math.ceil(n / per_row)
    block_w, block_h = per_row * (side + pair_gap), n_rows * (cap_h + 2 * side + 2 * gap)
    x0 = (w - left - block_w - cbar_w) / 2 + left  # centred, the colour bar included
    y_top = h - head - (h - head - 0.08 - block_h) / 2
    fig = plt.figure(figsize=_size())
    canvas = _inch_canvas(fig, w, h)
    for i in range(n):
        r, c = divmod(i, per_row)
        x = x0 + c * (side + pair_gap)
        y_face = y_top - r * (cap_h + 2 * side + 2 * gap) - cap_h - side
        for k, y in enumerate((y_face, y_face - side - gap)):
            box = (x, x + side, y, y + side)
            canvas.imshow(images[i], cmap="gray", vmin=0, vmax=255, extent=box, aspect="auto")
            if k:
                canvas.imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1, extent=box, aspect="auto")
            if c == 0:  # which row is which, once per row of pairs
                fig.text((x - 0.08) / w, (y + side / 2) / h, "Grad-CAM" if k else "image", rotation=90,
                         ha="right", va="center", fontsize=_fs(8), color="#475569")
        ok = labels[i] == preds[i]
        fig.text((x + side / 2) / w, (y_face + side + 0.04) / h,
                 f"{'✓' if ok else '✗'} {classes[labels[i]]}\n→ {classes[preds[i]]}", ha="center", va="bottom",
                 fontsize=_fs(8.5), linespacing=1.15, color=RIGHT if ok else WRONG)
    cax = fig.add_axes(((x0 + block_w + 0.1) / w, (y_top - block_h) / h, 0.14 / w, block_h / h))
    cb = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="jet"), cax=cax)
    cb.ax.tick_params(labelsize=_fs(8))
    cb.set_label("evidence for the predicted class\n(each map scaled to its maximum)", fontsize=_fs(8))
    fig.suptitle(title, fontsize=_fs(11), y=1 - 0.08 / h, va="top")
    fig.text(0.5, 1 - 0.36 / h, "caption: true class → predicted class (✓ green right, ✗ red wrong)",
             ha="center", va="top", fontsize=_fs(8.5), color="#334155")
    return _save(fig, path)
