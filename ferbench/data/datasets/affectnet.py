"""AffectNet (Mollahosseini et al. 2017), the manually annotated part.

Layout: ``Manually_Annotated_Images/<dir>/<file>`` with ``training.csv`` and ``validation.csv`` (beside the
images or in ``Manually_Annotated_file_lists/``; columns ``subDirectory_filePath, face_x, face_y,
face_width, face_height, facial_landmarks, expression, valence, arousal``). Expression 0 Neutral, 1 Happy,
2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt; 8-10 (none / uncertain / no face) are never
emotions and are excluded, counted. 8 classes by default; 7 (``affectnet7:PATH``) also excludes contempt.
training -> Training, validation -> PrivateTest (the usual test set; the official test set is unreleased).
The images are the released face crops; the face box columns are not applied again.
"""
from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

from ...errors import DataError
from ...vocabulary import AFFECTNET_CODES, AFFECTNET_NON_EMOTION, CLASSES_7, CLASSES_8
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..dataset import FERData
from ._common import Collector, open_text

IMAGES = "Manually_Annotated_Images"
WHERE = ("AffectNet is obtained from its authors (mohammadmahoor.com/affectnet) under a licence; pass the folder "
         "holding Manually_Annotated_Images/ and training.csv / validation.csv with --data")
_FILES = {"training.csv": "Training", "validation.csv": "PrivateTest"}


def _lists(path: Path) -> Path | None:
    for d in (path, path / "Manually_Annotated_file_lists"):
        if (d / "validation.csv").is_file() or (d / "training.csv").is_file():
            return d
    return None


def is_affectnet(path: Path) -> bool:
    return path.is_dir() and (path / IMAGES).is_dir() and _lists(path) is not None


def read_affectnet(path: Path, skip_bad: bool = False, progress=None, classes: int = 8,
        input: StudyInput = DEFAULT_INPUT) -> FERData:
    lists = _lists(path)
    if not (path / IMAGES).is_dir() or lists is None:
        raise DataError(f"AffectNet needs {path / IMAGES}/ and training.csv / validation.csv in {path}; "
                        f"{'the CSVs are' if lists is None else 'the image folder is'} missing. {WHERE}")
    vocab = CLASSES_8 if classes == 8 else CLASSES_7
    out = Collector("AffectNet" if classes == 8 else "AffectNet-7", vocab, str(path), skip_bad, progress,
                    target=input)
    for fname, usage in _FILES.items():
        if (lists / fname).is_file():
            _read_list(out, path, lists / fname, usage)
    return out.build()


def _read_list(out: Collector, root: Path, csv_path: Path, usage: str) -> None:
    with open_text(csv_path, "AffectNet list") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if "subDirectory_filePath" not in header or "expression" not in header:
            raise DataError(f"{csv_path}: header {','.join(header)[:200]!r} lacks subDirectory_filePath / expression")
        fi, ei = header.index("subDirectory_filePath"), header.index("expression")
        no = 1
        try:
            for no, row in enumerate(reader, start=2):
                _add_row(out, root, row, fi, ei, usage, f"{csv_path} line {no}")
        except csv.Error as exc:
            raise DataError(f"{csv_path} line {no + 1}: not a CSV row ({exc})") from None


def _add_row(out: Collector, root: Path, row: list[str], fi: int, ei: int, usage: str, where: str) -> None:
    try:
        code, rel = int(row[ei]), PurePosixPath(row[fi].strip())
    except (ValueError, IndexError):
        raise DataError(f"{where}: no integer expression or no file path") from None
    if code in AFFECTNET_NON_EMOTION:
        out.exclude(f"expression {code} ({AFFECTNET_NON_EMOTION[code]}): not an emotion")
        return
    if code not in AFFECTNET_CODES:
        raise DataError(f"{where}: expression {code} is not an AffectNet code (0-10)")
    label = AFFECTNET_CODES[code]
    if label not in out.classes:
        out.exclude(f"expression {code} ({label}): not in the 7-class set")
        return
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DataError(f"{where}: image path {str(rel)[:80]!r} leaves {IMAGES}/")
    out.add_file(root / IMAGES / Path(*rel.parts), label, str(rel), usage)
