"""Readers for the datasets the field compares on, each in its layout as distributed.

A folder is recognised by its layout (``--data PATH``), or named with a prefix (``--data ferplus:PATH``),
which also picks a variant: ``ferplus-plurality:``, ``ferplus-soft:``, ``affectnet7:``. Nothing is
downloaded. Every reader maps the dataset's own label codes into :mod:`ferbench.vocabulary` and counts
what it leaves out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from ...errors import DataError
from ..dataset import FERData
from .affectnet import is_affectnet, read_affectnet
from .ferplus import is_ferplus, read_ferplus
from .rafdb import is_rafdb, read_rafdb


@dataclass(frozen=True)
class DatasetKind:
    """One dataset layout: how it is recognised, how it is read, the variant's options."""

    title: str
    detect: Callable[[Path], bool]
    read: Callable[..., FERData]
    options: dict = field(default_factory=dict)

    def load(self, path: Path, *, skip_bad: bool = False, progress=None) -> FERData:
        return partial(self.read, **self.options)(path, skip_bad=skip_bad, progress=progress)


DATASETS: dict[str, DatasetKind] = {
    "ferplus": DatasetKind("FER+ (majority)", is_ferplus, read_ferplus, {"mode": "majority"}),
    "ferplus-plurality": DatasetKind("FER+ (plurality)", is_ferplus, read_ferplus, {"mode": "plurality"}),
    "ferplus-soft": DatasetKind("FER+ (vote distribution)", is_ferplus, read_ferplus, {"mode": "soft"}),
    "rafdb": DatasetKind("RAF-DB basic", is_rafdb, read_rafdb),
    "affectnet": DatasetKind("AffectNet-8", is_affectnet, read_affectnet, {"classes": 8}),
    "affectnet7": DatasetKind("AffectNet-7", is_affectnet, read_affectnet, {"classes": 7}),
}
AUTO = ("ferplus", "rafdb", "affectnet")  # recognised from the folder alone, first match wins


def resolve(spec: str) -> tuple[str, Path] | None:
    """(dataset name, path) when ``spec`` names or holds one of these datasets; None for FER2013 forms."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix.lower() in DATASETS:
        path = Path(rest)
        if not path.exists():
            raise DataError(f"{DATASETS[prefix.lower()].title} path {rest} does not exist")
        return prefix.lower(), path
    path = Path(spec)
    if path.is_dir():
        for name in AUTO:
            if DATASETS[name].detect(path):
                return name, path
    return None


def dataset_names() -> list[str]:
    return list(DATASETS)
