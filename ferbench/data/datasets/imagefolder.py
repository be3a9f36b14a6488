"""Any labelled image folder: ``<split>/<class>/*`` plus a label map ``labels.yaml`` at its root.

``labels.yaml`` maps each class folder's name to a vocabulary class (``anger: angry``, ``joy: happy``,
``scorn: contempt``) or to ``null`` to leave that folder out (counted). Split folders: ``train``/``training``
-> Training, ``val``/``validation`` -> PublicTest, ``test`` -> PrivateTest. A class folder the map does not
name is an error listing it: nothing is guessed. 8 classes when contempt is mapped, else 7.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from ...errors import DataError
from ...vocabulary import CLASSES_7, CLASSES_8, vocab_class
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..dataset import FERData
from ..sources import IMAGE_EXTS
from ._common import Collector, open_text

MAP = "labels.yaml"
_SPLITS = {"train": "Training", "training": "Training", "val": "PublicTest", "valid": "PublicTest",
           "validation": "PublicTest", "test": "PrivateTest"}


def is_imagefolder(path: Path) -> bool:
    return path.is_dir() and (path / MAP).is_file()


def read_label_map(path: Path) -> dict[str, str | None]:
    """{class folder: vocabulary class or None}; one-line DataError for anything else."""
    with open_text(path, "label map") as fh:
        text = fh.read(1_000_001)
    if len(text) > 1_000_000:
        raise DataError(f"{path} is over 1 MB; a label map is a few lines")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a mapping of class folder names to classes, e.g. 'joy: happy'")
    out: dict[str, str | None] = {}
    for folder, cls in raw.items():
        target = None if cls is None else vocab_class(str(cls))
        if cls is not None and target is None:
            raise DataError(f"{path}: {str(cls)[:40]!r} (for {str(folder)[:40]!r}) is not one of "
                            f"{', '.join(CLASSES_8)} or null")
        out[str(folder)] = target
    return out


def read_imagefolder(path: Path, skip_bad: bool = False, progress=None,
        input: StudyInput = DEFAULT_INPUT) -> FERData:
    labels = read_label_map(path / MAP)
    classes = CLASSES_8 if "contempt" in labels.values() else CLASSES_7
    out = Collector("image folder", classes, str(path), skip_bad, progress, target=input)
    for split in sorted(os.listdir(path)):
        if not (path / split).is_dir():
            continue
        if split.lower() not in _SPLITS:
            raise DataError(f"{path / split}: a split folder must be one of {', '.join(_SPLITS)}")
        for folder in sorted(os.listdir(path / split)):
            if (path / split / folder).is_dir():
                _add_class(out, path / split / folder, labels, _SPLITS[split.lower()])
    return out.build()


def _add_class(out: Collector, folder: Path, labels: dict[str, str | None], usage: str) -> None:
    if folder.name not in labels:
        raise DataError(f"class folder {folder} is not in {MAP} (it names {', '.join(sorted(labels))[:200]})")
    files = sorted(f for f in os.listdir(folder) if Path(f).suffix.lower() in IMAGE_EXTS and not f.startswith("."))
    if labels[folder.name] is None:
        out.excluded[f"class folder {folder.name!r} mapped to null"] += len(files)
        return
    for f in files:
        out.add_file(folder / f, labels[folder.name], f"{folder.parent.name}/{folder.name}/{Path(f).stem}", usage)
