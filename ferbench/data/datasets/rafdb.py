"""RAF-DB basic (Li et al. 2017): 15,339 web faces, 7 classes, a fixed train/test partition.

Layout as distributed: ``basic/EmoLabel/list_patition_label.txt`` (sic; lines ``train_00001.jpg 5``,
labels 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral) and the images in
``basic/Image/aligned/<name>_aligned.jpg`` (100x100 RGB), else ``basic/Image/original/<name>``.
The path may be the RAF-DB folder or its ``basic/``. train -> Training, test -> PrivateTest (its test set).
"""
from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ...vocabulary import CLASSES_7, RAFDB_CODES
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..dataset import FERData
from ._common import Collector, need, parsed_lines

LABELS = Path("EmoLabel", "list_patition_label.txt")
WHERE = ("RAF-DB is obtained from its authors (whdeng.cn/RAF/model1.html) under an academic licence; pass "
         "the unpacked folder (holding basic/) with --data")
_USAGE = {"train": "Training", "test": "PrivateTest"}


def _basic(path: Path) -> Path:
    return path / "basic" if (path / "basic" / LABELS).is_file() else path


def is_rafdb(path: Path) -> bool:
    return path.is_dir() and (_basic(path) / LABELS).is_file()


def parse_line(line: str, where: str) -> tuple[str, str, str] | None:
    """(file name, vocabulary class, usage) of one label line, None for a blank line."""
    parts = line.split()
    if not parts:
        return None
    if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in RAFDB_CODES:
        raise DataError(f"{where}: expected '<name>.jpg <1-7>', got {line.strip()[:80]!r}")
    usage = _USAGE.get(parts[0].split("_", 1)[0])
    if usage is None or "/" in parts[0] or "\\" in parts[0] or parts[0].startswith("."):
        raise DataError(f"{where}: {parts[0][:80]!r} is not a train_/test_ image name")
    return parts[0], RAFDB_CODES[int(parts[1])], usage


def read_rafdb(path: Path, skip_bad: bool = False, progress=None,
        input: StudyInput = DEFAULT_INPUT) -> FERData:
    basic = _basic(path)
    labels = need(basic / LABELS, "basic/EmoLabel/list_patition_label.txt", "RAF-DB", WHERE)
    aligned, original = basic / "Image" / "aligned", basic / "Image" / "original"
    if not aligned.is_dir() and not original.is_dir():
        raise DataError(f"RAF-DB needs its images in {aligned} or {original}; neither is there. {WHERE}")
    out = Collector("RAF-DB", CLASSES_7, str(path), skip_bad, progress, target=input)
    for no, (name, label, usage) in parsed_lines(labels, "RAF-DB label list", parse_line):
        stem = Path(name).stem
        img = aligned / f"{stem}_aligned.jpg" if aligned.is_dir() else original / name
        if not img.exists() and not skip_bad:
            raise DataError(f"RAF-DB image {img} (named in {labels} line {no}) is missing")
        out.add_file(img, label, stem, usage)
    return out.build()
