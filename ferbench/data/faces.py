"""Face re-detection with MTCNN (Zhang et al. 2016), the augmented study's "Use MTCNN to detect face, and
resize them to 48x48 pixels" (shared/papers/003, Data Cleaning): images without a detected face are
dropped, the others are cropped to the most confident face and resized back to 48x48.

The detector is facenet-pytorch's MTCNN, whose P/R/O-Net weights ship inside its wheel (nothing is
downloaded). Its metadata pins an old torch, so it is installed without its dependencies
(``pip install --no-deps facenet-pytorch``; it needs only torch, torchvision, numpy and Pillow, which
ferbench already has). A suite that asks for it fails before training when it is missing.

Detections are cached beside the decoded arrays (``faces-<key>/``), keyed by a hash of the images and
every detector setting, each array checked against its sha256 on load, like :mod:`ferbench.data.cache`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import remove_stale_temps, temp_prefix
from ..errors import FerbenchError
from .cache import _open_regular, _sha256, cache_dir
from .dataset import FERData

FORMAT = 1
PAPER_KEPT = 30159  # 150,795 augmented images / 5 copies (the paper's split table)
BATCH = 256
INSTALL = "pip install --no-deps facenet-pytorch (its wheel holds the MTCNN weights; --no-deps keeps your torch)"


@dataclass(frozen=True)
class MTCNNSettings:
    """facenet-pytorch's MTCNN defaults, stated: a face is kept when it passes all three stages."""
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-Net, R-Net, O-Net face probabilities
    min_face_size: int = 20  # pixels, on the 48-px image
    factor: float = 0.709  # image pyramid scale step

    def describe(self) -> str:
        t = "/".join(f"{x:g}" for x in self.thresholds)
        return (f"MTCNN (facenet-pytorch), stage thresholds {t}, min face {self.min_face_size} px, "
                f"pyramid {self.factor:g}")


@dataclass
class Detections:
    boxes: np.ndarray  # float32 (N, 4) x1, y1, x2, y2 of the most confident face; NaN where none
    probs: np.ndarray  # float32 (N,) its O-Net probability; NaN where none

    @property
    def kept(self) -> np.ndarray:
        return ~np.isnan(self.probs)


def available() -> bool:
    return importlib.util.find_spec("facenet_pytorch") is not None


def require() -> None:
    """FerbenchError in one line when a suite asks for MTCNN and facenet-pytorch is not installed."""
    if not available():
        raise FerbenchError(f"the suite asks for MTCNN face detection (split face_detect: mtcnn) but facenet-pytorch "
                            f"is not installed: {INSTALL}; or run a profile without face detection (quick, smoke)")


def _version() -> str:
    from importlib.metadata import version

    return version("facenet-pytorch")


def detections_key(images: np.ndarray, s: MTCNNSettings) -> str:
    h = hashlib.sha256(f"faces-v{FORMAT}|{_version()}|{s}|{images.shape}".encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()[:20]


def _load(p: Path, n: int) -> Detections | None:
    """The cached detections in ``p``, or None when absent or not to be trusted (then detected again)."""
    try:
        with _open_regular(p / "meta.json") as fh:
            meta = json.loads(fh.read(10_000))
        arrays = {}
        for a in ("boxes", "probs"):
            if _sha256(p / f"{a}.npy") != meta["sha256"][a]:
                return None
            arrays[a] = np.load(p / f"{a}.npy", allow_pickle=False)
        b, pr = arrays["boxes"], arrays["probs"]
        if meta.get("format") != FORMAT or b.shape != (n, 4) or pr.shape != (n,) or b.dtype != np.float32 \
                or pr.dtype != np.float32:
            return None
        return Detections(b, pr)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(p: Path, det: Detections, settings: MTCNNSettings) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(p.name), dir=p.parent))
    try:
        sums = {}
        for a in ("boxes", "probs"):
            np.save(tmp / f"{a}.npy", getattr(det, a), allow_pickle=False)
            sums[a] = _sha256(tmp / f"{a}.npy")
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "detector": settings.describe(), "sha256": sums}))
        shutil.rmtree(p, ignore_errors=True)
        os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_mtcnn(images: np.ndarray, s: MTCNNSettings, progress: Callable[[int, int], None] | None = None) -> Detections:
    """Detect faces in uint8 (N, H, W) gray images, in batches, on the CPU."""
    require()
    from facenet_pytorch import MTCNN

    net = MTCNN(min_face_size=s.min_face_size, thresholds=list(s.thresholds), factor=s.factor,
                select_largest=False, keep_all=False, post_process=False, device="cpu")
    boxes = np.full((len(images), 4), np.nan, np.float32)
    probs = np.full(len(images), np.nan, np.float32)
    for i in range(0, len(images), BATCH):
        rgb = np.repeat(np.asarray(images[i:i + BATCH])[..., None], 3, axis=3)
        b, pr = net.detect(rgb)
        for j, (bb, pp) in enumerate(zip(b, pr)):
            if bb is not None:
                boxes[i + j], probs[i + j] = bb[0], pp[0]
        if progress is not None:
            progress(min(i + BATCH, len(images)), len(images))
    return Detections(boxes, probs)


def detect_faces(images: np.ndarray, s: MTCNNSettings = MTCNNSettings(),
                 progress: Callable[[int, int], None] | None = None) -> tuple[Detections, bool]:
    """(detections, whether they came from the cache) for ``images``; computed once per image set."""
    require()
    p = cache_dir() / f"faces-{detections_key(images, s)}"
    remove_stale_temps(p.parent)
    if (p / "meta.json").exists() and (det := _load(p, len(images))) is not None:
        return det, True
    det = run_mtcnn(images, s, progress)
    _save(p, det, s)
    return det, False


def crop_resize(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face box (clamped to the image) cut out and resized to the image's own size."""
    from PIL import Image

    h, w = image.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return image
    return np.asarray(Image.fromarray(image[y1:y2, x1:x2]).resize((w, h), Image.BILINEAR), dtype=np.uint8)


def apply_faces(data: FERData, det: Detections) -> FERData:
    """The images with a detected face, each cropped to it and resized back (the study's Data Cleaning)."""
    keep = np.flatnonzero(det.kept)
    out = data.subset(keep)
    out.images = np.stack([crop_resize(data.images[i], det.boxes[i]) for i in keep]) if len(keep) else out.images
    return out


def kept_note(kept: int, total: int) -> str:
    return (f"MTCNN face re-detection kept {kept:,} of {total:,} images (the paper kept {PAPER_KEPT:,}); "
            f"{MTCNNSettings().describe()}; each kept image cropped to its face and resized to 48x48")


def face_summary(data: FERData, det: Detections) -> dict:
    """Kept images in all and per class, beside the paper's count (``ferbench data faces``)."""
    kept = det.kept
    per_class = {c: f"{int(kept[data.labels == i].sum()):,} of {int((data.labels == i).sum()):,}"
                 for i, c in enumerate(data.classes)}
    return {"detector": MTCNNSettings().describe(), "images": len(data), "kept": int(kept.sum()),
            "paper_kept": PAPER_KEPT, "per_class": per_class}
