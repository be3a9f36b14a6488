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
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..cache import check_cache_writable, input_key, load_cached, save_cached, source_key
from ..dataset import FERData
from ..registry import register_source
from .affectnet import is_affectnet, read_affectnet
from .ckplus import is_ckplus, read_ckplus
from .expw import is_expw, read_expw
from .imagefolder import is_imagefolder, read_imagefolder
from .ferplus import is_ferplus, read_ferplus
from .jaffe import is_jaffe, read_jaffe
from .rafdb import is_rafdb, read_rafdb
from .sfew import is_sfew, read_sfew


@dataclass(frozen=True)
class DatasetKind:
    """One dataset layout: how it is recognised, how it is read, the variant's options."""

    title: str
    detect: Callable[[Path], bool]
    read: Callable[..., FERData]
    options: dict = field(default_factory=dict)

    def load(self, path: Path, *, skip_bad: bool = False, progress=None, input: StudyInput = DEFAULT_INPUT) -> FERData:
        return partial(self.read, **self.options)(path, skip_bad=skip_bad, progress=progress, input=input)


DATASETS: dict[str, DatasetKind] = {
    "ferplus": DatasetKind("FER+ (majority)", is_ferplus, read_ferplus, {"mode": "majority"}),
    "ferplus-plurality": DatasetKind("FER+ (plurality)", is_ferplus, read_ferplus, {"mode": "plurality"}),
    "ferplus-soft": DatasetKind("FER+ (vote distribution)", is_ferplus, read_ferplus, {"mode": "soft"}),
    "rafdb": DatasetKind("RAF-DB basic", is_rafdb, read_rafdb),
    "affectnet": DatasetKind("AffectNet-8", is_affectnet, read_affectnet, {"classes": 8}),
    "affectnet7": DatasetKind("AffectNet-7", is_affectnet, read_affectnet, {"classes": 7}),
    "ckplus": DatasetKind("CK+ (last three frames)", is_ckplus, read_ckplus),
    "jaffe": DatasetKind("JAFFE", is_jaffe, read_jaffe),
    "expw": DatasetKind("ExpW (face boxes cropped)", is_expw, read_expw),
    "sfew": DatasetKind("SFEW 2.0 (Train / Val)", is_sfew, read_sfew),
    "imagefolder": DatasetKind("image folder with labels.yaml", is_imagefolder, read_imagefolder),
}
# Recognised from the folder alone, first match wins.
AUTO = ("ferplus", "rafdb", "affectnet", "ckplus", "expw", "imagefolder", "sfew", "jaffe")


def split_named(spec: str) -> tuple[str, Path] | None:
    prefix, sep, rest = spec.partition(":")
    return (prefix.lower(), Path(rest)) if sep and prefix.lower() in DATASETS else None


def named_cache_key(spec: str, *, skip_bad: bool, input: StudyInput = DEFAULT_INPUT) -> str | None:
    """The array-cache key of a prefixed spec (``rafdb:PATH``): its path's, with the variant's name (and the
    study's input where it is not the default)."""
    named = split_named(spec)
    if named is None or not named[1].exists():
        return None
    return source_key(str(named[1]), skip_bad=skip_bad, dataset=named[0], **input_key(input))


def _read_named(spec: str, *, skip_bad: bool = False, progress=None, input: StudyInput = DEFAULT_INPUT) -> FERData:
    """A prefixed spec: read through the same checked array cache as a recognised layout (the registry
    caches only unprefixed paths), under a key that carries the variant."""
    name, path = split_named(spec)
    if not path.exists():
        raise DataError(f"{DATASETS[name].title} path {path} does not exist")
    key = named_cache_key(spec, skip_bad=skip_bad, input=input)
    check_cache_writable()
    if (hit := load_cached(key, shape=input.shape)) is not None:
        return hit
    data = DATASETS[name].load(path, skip_bad=skip_bad, progress=progress, input=input)
    save_cached(key, data)
    return data


def _read_layout(name: str):
    def read(spec: str, *, skip_bad: bool = False, progress=None, input: StudyInput = DEFAULT_INPUT) -> FERData:
        return DATASETS[name].load(Path(spec), skip_bad=skip_bad, progress=progress, input=input)
    return read


# ahead of the generic folder layouts (registered when ._common imported ..sources), which take any folder
for _name in AUTO:
    register_source(_name, _read_layout(_name), matches=DATASETS[_name].detect, before="hf-folder", sized=True)
for _name in DATASETS:
    register_source(f"{_name}:", _read_named, prefix=f"{_name}:", sized=True)


def dataset_names() -> list[str]:
    return list(DATASETS)
