"""CK+ (Lucey et al. 2010): posed expression sequences (as published: 123 subjects, 327 sequences with an
emotion label).

Layout: ``cohn-kanade-images/Sxxx/yyy/Sxxx_yyy_zzzzzzzz.png`` with ``Emotion/Sxxx/yyy/Sxxx_yyy_zzzzzzzz_emotion.txt``
(one float code, e.g. ``   3.0000000e+00``: 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness,
7 surprise). The usual protocol: the last three frames of each labelled sequence, subject-independent folds
(``split: {kind: subject_kfold}``); the subject (``Sxxx``) is each image's group. Sequences without an
emotion file are counted as excluded. CK+ has no test partition: every image is tagged Training.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import DataError
from ...vocabulary import CKPLUS_CODES, CLASSES_8
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..dataset import FERData
from ._common import Collector, open_text

IMAGES, EMOTION = "cohn-kanade-images", "Emotion"
WHERE = ("CK+ is obtained from its authors (the Affect Analysis Group, University of Pittsburgh) under a licence; "
         "pass the folder holding cohn-kanade-images/ and Emotion/ with --data")
FRAMES = 3  # the last three frames of each sequence
_NAME = re.compile(r"^S\d{3}$")


def is_ckplus(path: Path) -> bool:
    return path.is_dir() and (path / IMAGES).is_dir() and (path / EMOTION).is_dir()


def parse_code(text: str, where: str) -> str:
    """The vocabulary class of an emotion file's float code ('   3.0000000e+00' -> disgust)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise DataError(f"{where}: expected one number such as 3.0000000e+00, got {text.strip()[:40]!r}") from None
    if value != int(value) or int(value) not in CKPLUS_CODES or int(value) == 0:
        raise DataError(f"{where}: emotion code {value} is not one of CK+'s 1-7")
    return CKPLUS_CODES[int(value)]


def read_ckplus(path: Path, skip_bad: bool = False, progress=None,
        input: StudyInput = DEFAULT_INPUT) -> FERData:
    if not is_ckplus(path):
        raise DataError(f"CK+ needs {path / IMAGES}/ and {path / EMOTION}/; one is missing. {WHERE}")
    out = Collector("CK+", CLASSES_8, str(path), skip_bad, progress, target=input)
    for subject in sorted(os.listdir(path / IMAGES)):
        if not _NAME.match(subject) or not (path / IMAGES / subject).is_dir():
            continue
        for seq in sorted(os.listdir(path / IMAGES / subject)):
            _add_sequence(out, path, subject, seq)
    return out.build()


def _add_sequence(out: Collector, root: Path, subject: str, seq: str) -> None:
    frames_dir = root / IMAGES / subject / seq
    if not frames_dir.is_dir():
        return
    emo_dir = root / EMOTION / subject / seq
    files = sorted(emo_dir.glob("*_emotion.txt")) if emo_dir.is_dir() else []
    if not files:
        out.exclude("sequence without an emotion label")
        return
    with open_text(files[0], "CK+ emotion file") as fh:
        label = parse_code(fh.read(256), str(files[0]))
    frames = sorted(f for f in os.listdir(frames_dir) if f.lower().endswith(".png") and not f.startswith("."))
    for name in frames[-FRAMES:]:
        out.add_file(frames_dir / name, label, Path(name).stem, "Training", group=subject)
