"""The one in-memory form every source is loaded into."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import CLASSES

USAGES = ("Training", "PublicTest", "PrivateTest")


@dataclass
class FERData:
    """FER images in canonical form.

    images: uint8 (N, H, W) grayscale (FER2013: 48 x 48) or (N, H, W, 3) RGB, as the study's input declares;
    labels: int64 (N,) indices into ``classes``;
    ids: str (N,) unique image ids; usage: str (N,) the original FER2013 usage tag
    (Training / PublicTest / PrivateTest); groups: str (N,) the original image each row
    derives from (equal to ids unless rows are augmented copies).
    dataset: which dataset the rows come from (FER2013, FER+, RAF-DB, ...); excluded: rows the reader
    left out by the dataset's own rules, counted per reason; conversions: how many images were
    converted, per conversion (e.g. "100x100 RGB -> 48x48 gray"); soft: float32 (N, C) label
    distributions where the dataset has them (FER+'s annotator votes), else None.
    """

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    usage: np.ndarray
    classes: tuple[str, ...] = CLASSES
    source: str = ""
    groups: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)
    dataset: str = "FER2013"
    excluded: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    soft: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or not (self.images.ndim == 3 or (self.images.ndim == 4
                                                                           and self.images.shape[-1] == 3)):
            raise ValueError(f"images must be uint8 (N, H, W) or (N, H, W, 3); got {self.images.dtype} "
                             f"{self.images.shape}")
        for name in ("labels", "ids", "usage"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, images has {n}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.groups is None:
            self.groups = self.ids

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> "FERData":
        index = np.asarray(index)
        return FERData(self.images[index], self.labels[index], self.ids[index], self.usage[index],
                       self.classes, self.source, self.groups[index], dataset=self.dataset,
                       soft=None if self.soft is None else self.soft[index])

    def where_usage(self, usage: str) -> np.ndarray:
        return np.flatnonzero(self.usage == usage)

    def counts(self) -> dict[str, dict[str, int]]:
        """Counts per usage tag and class: {usage: {class: n}}."""
        out: dict[str, dict[str, int]] = {}
        for u in USAGES:
            idx = self.where_usage(u)
            if len(idx) == 0:
                continue
            bc = np.bincount(self.labels[idx], minlength=len(self.classes))
            out[u] = {c: int(k) for c, k in zip(self.classes, bc)}
        return out
