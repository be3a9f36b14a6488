"""SFEW 2.0 (Dhall et al. 2011, the EmotiW 2015 image challenge): faces from film stills, 7 classes.

Layout: ``Train/<Class>/*`` and ``Val/<Class>/*`` with class folders ``Angry``, ``Disgust``, ``Fear``,
``Happy``, ``Neutral``, ``Sad``, ``Surprise`` (any case; the aligned-face release has the same layout).
Train -> Training, Val -> PrivateTest: Val is the test set the field reports on (Lian et al. 2023 score
GPT-4V on 435 of its images, UniFER's FERBench lists 431), since the challenge's Test labels were never
released; a ``Test`` folder is left out and its images counted. Use ``kind: holdout`` (a stratified share
of Train as val, Val as test) or ``kind: manifest`` with a benchmark's own list.
"""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import DataError
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ...vocabulary import CLASSES_7, vocab_class
from ..dataset import FERData
from ..sources import IMAGE_EXTS
from ._common import Collector

_USAGE = {"train": "Training", "val": "PrivateTest"}


def _split_dirs(path: Path) -> dict[str, Path]:
    if not path.is_dir():
        return {}
    return {d.lower(): path / d for d in os.listdir(path) if (path / d).is_dir() and d.lower() in (*_USAGE, "test")}


def _images(folder: Path) -> list[str]:
    return sorted(f for f in os.listdir(folder) if Path(f).suffix.lower() in IMAGE_EXTS and not f.startswith("."))


def is_sfew(path: Path) -> bool:
    """``Train/`` and ``Val/`` spelt as SFEW ships them, holding emotion-named class folders. FER2013's Kaggle
    folder (``train/``, ``test/``) and other image folders are not taken for SFEW; ``sfew:PATH`` reads any case."""
    if not path.is_dir() or (path / "labels.yaml").exists():
        return False
    dirs = [path / "Train", path / "Val"]
    return all(d.is_dir() and d.name in os.listdir(path) for d in dirs) and \
        any(vocab_class(c) for d in dirs for c in os.listdir(d) if (d / c).is_dir())


def read_sfew(path: Path, skip_bad: bool = False, progress=None, input: StudyInput = DEFAULT_INPUT) -> FERData:
    dirs = _split_dirs(path)
    if not set(dirs) & set(_USAGE):
        raise DataError(f"SFEW 2.0 needs Train/<Class>/ and Val/<Class>/ folders in {path}; neither is there. SFEW "
                        "is obtained from the EmotiW organisers (cs.anu.edu.au/few) under a licence")
    out = Collector("SFEW 2.0", CLASSES_7, str(path), skip_bad, progress, target=input)
    for split, usage in _USAGE.items():
        if split not in dirs:
            continue
        for folder in sorted(os.listdir(dirs[split])):
            if not (dirs[split] / folder).is_dir():
                continue
            label = vocab_class(folder)
            if label not in CLASSES_7:
                raise DataError(f"SFEW class folder {dirs[split] / folder} is not one of Angry, Disgust, Fear, Happy, "
                                "Neutral, Sad, Surprise")
            for f in _images(dirs[split] / folder):
                out.add_file(dirs[split] / folder / f, label, f"{dirs[split].name}/{folder}/{Path(f).stem}", usage)
    if "test" in dirs:
        n = sum(len(_images(Path(d))) for d, _, _ in os.walk(dirs["test"]))
        if n:
            out.excluded[f"{dirs['test'].name}/: the challenge's test labels were never released"] += n
    return out.build()
