"""FER+ (Barsoum et al. 2016): FER2013's 35,887 images relabelled by ten annotators each.

Layout: a folder holding the challenge file ``fer2013.csv`` (the pixels) and FER+'s ``fer2013new.csv``
(same row order; ``Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, NF`` vote counts). Label modes follow FER+'s paper and its reference code:

majority   votes of 1 are dropped as outliers; the top class is kept only with more than half of the
           remaining votes; otherwise the image is excluded (counted). The default.
plurality  votes of 1 dropped; the top class (first in file order on ties).
soft       the plurality label, plus the vote distribution over the 8 emotions for soft-label training.
In every mode an image whose top class is unknown or NF (not a face), or that has no image name, is excluded.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...vocabulary import CLASSES_8, FERPLUS_COLUMNS, FERPLUS_MAP
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..dataset import FERData
from ..sources import SIZE, _CSV_USAGE
from ._common import Collector, need, open_text

MODES = ("majority", "plurality", "soft")
WHERE = ("FER+'s labels come from github.com/microsoft/FERPlus (fer2013new.csv); the pixels from the 2013 "
         "challenge's fer2013.csv (Kaggle). Put both in one folder and pass it with --data")
_EMOTIONS = len(FERPLUS_MAP)  # 8: the columns before unknown and NF
# FER+ column order -> vocabulary order, for the soft distribution.
_TO_VOCAB = [CLASSES_8.index(FERPLUS_MAP[c]) for c in FERPLUS_COLUMNS[:_EMOTIONS]]


def ferplus_label(votes: list[int], mode: str = "majority") -> tuple[str | None, str]:
    """(vocabulary class, "") for one row of vote counts, or (None, why it is excluded)."""
    if mode not in MODES:
        raise DataError(f"FER+ label mode {mode!r} is not one of {', '.join(MODES)}")
    kept = [v if v > 1 else 0 for v in votes]  # a single vote is an outlier (FER+'s code)
    total = sum(kept)
    if total == 0:
        return None, "no class with more than one vote"
    top = int(np.argmax(kept))  # first maximum: file order breaks ties
    if mode == "majority" and kept[top] * 2 <= total:
        return None, "no majority (top class has at most half the votes left)"
    if top >= _EMOTIONS:
        return None, f"top class is {FERPLUS_COLUMNS[top]}"
    return FERPLUS_MAP[FERPLUS_COLUMNS[top]], ""


def soft_label(votes: list[int]) -> np.ndarray:
    """The vote distribution over the 8 emotions (single votes dropped), in vocabulary order."""
    kept = np.array([v if v > 1 else 0 for v in votes[:_EMOTIONS]], dtype=np.float64)
    out = np.zeros(len(CLASSES_8), dtype=np.float32)
    out[_TO_VOCAB] = kept / kept.sum() if kept.sum() else kept
    return out


def is_ferplus(path: Path) -> bool:
    return path.is_dir() and (path / "fer2013new.csv").is_file()


def read_ferplus(path: Path, skip_bad: bool = False, progress=None, mode: str = "majority",
        input: StudyInput = DEFAULT_INPUT) -> FERData:
    if mode not in MODES:
        raise DataError(f"FER+ label mode {mode!r} is not one of {', '.join(MODES)}")
    new = need(path / "fer2013new.csv", "fer2013new.csv", "FER+", WHERE)
    if not (path / "fer2013.csv").exists():
        kaggle = (path / "train").is_dir() or (path / "test").is_dir()
        raise DataError(f"FER+ needs fer2013.csv beside {new}: FER+ attaches to the 2013 challenge CSV by row"
                        + ("; the Kaggle JPEG folders (train/, test/) here cannot be used, their file ids are "
                           "not row numbers" if kaggle else "") + f". {WHERE}")
    out = Collector("FER+", CLASSES_8, str(path), skip_bad, progress, target=input)
    with open_text(path / "fer2013.csv", "FER2013 CSV") as fpx, open_text(new, "FER+ label file") as fvo:
        pix, votes = csv.reader(fpx), csv.reader(fvo)
        px_col = _check_headers(next(pix, []), next(votes, []), path)
        row = 0
        try:
            for row, (p, v) in enumerate(zip(pix, votes, strict=True), start=1):
                _add_row(out, p[px_col:px_col + 1], v, row, mode, path)
        except ValueError as exc:
            if "zip()" not in str(exc):
                raise
            raise DataError(f"{path}: fer2013.csv and fer2013new.csv hold different numbers of rows (they differ "
                            f"after row {row}); FER+ needs the two files of one release, in the same order") from None
        except csv.Error as exc:
            raise DataError(f"{path}: row {row + 1} is not a CSV row ({exc})") from None
    return out.build()


def _check_headers(pix: list[str], votes: list[str], path: Path) -> int:
    """The pixels column of fer2013.csv, once both headers are checked."""
    if "pixels" not in [h.strip() for h in pix]:
        raise DataError(f"{path / 'fer2013.csv'}: not the challenge CSV (no 'pixels' column); {WHERE}")
    want = ["Usage", "Image name", *FERPLUS_COLUMNS]
    if [h.strip() for h in votes] != want:
        raise DataError(f"{path / 'fer2013new.csv'}: header {','.join(votes)[:200]!r} is not FER+'s "
                        f"{','.join(want)!r}")
    return [h.strip() for h in pix].index("pixels")


def _add_row(out: Collector, p: list[str], v: list[str], row: int, mode: str, path: Path) -> None:
    where = f"{path / 'fer2013new.csv'} line {row + 1}"
    if len(v) != 12:
        raise DataError(f"{where}: expected 12 fields, got {len(v)}")
    if not v[1].strip():
        out.exclude("no image name (FER+ found no face)")
        return
    try:
        votes = [int(x) for x in v[2:]]
        usage = _CSV_USAGE[v[0].strip().lower()]
    except (ValueError, KeyError):
        raise DataError(f"{where}: Usage {v[0][:40]!r} or the vote counts are not FER+'s") from None
    label, why = ferplus_label(votes, mode)
    if label is None:
        out.exclude(why)
        return
    try:
        px = np.array(p[0].split(), dtype=np.int64)  # fer2013.csv: emotion, pixels, Usage
        if px.size != SIZE * SIZE or px.min() < 0 or px.max() > 255:
            raise ValueError
    except (ValueError, IndexError):
        raise DataError(f"{path / 'fer2013.csv'} line {row + 1}: expected {SIZE * SIZE} pixel values "
                        "in 0..255") from None
    out.add(px.astype(np.uint8).reshape(SIZE, SIZE), label, f"{usage}_{row}", usage, soft=soft_label(votes))
