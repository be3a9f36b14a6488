"""ExpW (Zhang et al. 2018, "From facial expression recognition to interpersonal relation prediction"):
91,793 faces in web photos.

Layout: ``image/origin/<photo>.jpg`` and ``label/label.lst``, one face per line:
``image_name face_id_in_image face_box_top face_box_left face_box_right face_box_bottom face_box_confidence
expression_label`` with labels 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
(FER2013's order). Each face is cropped from its photo by its box before the resize to 48 px; the photo is
each face's group, so faces of one photo never straddle partitions. ExpW has no official split: every face
is tagged Training; ``split: {kind: stratified}`` makes a seeded stratified one.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import DataError
from ...vocabulary import CLASSES_7
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..dataset import FERData
from ._common import Collector, need, parsed_lines

LABELS, ORIGIN = Path("label", "label.lst"), Path("image", "origin")
WHERE = ("ExpW is obtained from its authors (mmlab.ie.cuhk.edu.hk/projects/socialrelation/index.html); pass the "
         "folder holding image/origin/ and label/label.lst with --data")


def is_expw(path: Path) -> bool:
    return path.is_dir() and (path / LABELS).is_file()


def parse_line(line: str, where: str) -> tuple[str, str, tuple[int, int, int, int], str] | None:
    """(photo name, face id, crop box (left, top, right, bottom), vocabulary class), None for a blank line."""
    parts = line.split()
    if not parts:
        return None
    try:
        if len(parts) != 8:
            raise ValueError
        top, left, right, bottom = (int(float(v)) for v in parts[2:6])
        code = int(parts[7])
    except ValueError:
        raise DataError(f"{where}: expected 'name face_id top left right bottom confidence label', got "
                        f"{line.strip()[:80]!r}") from None
    if not 0 <= code < len(CLASSES_7):
        raise DataError(f"{where}: expression label {code} is not one of ExpW's 0-6")
    if "/" in parts[0] or "\\" in parts[0] or parts[0].startswith(".") or right <= left or bottom <= top:
        raise DataError(f"{where}: {parts[0][:80]!r} is not a photo name with a face box")
    return parts[0], parts[1], (left, top, right, bottom), CLASSES_7[code]


def read_expw(path: Path, skip_bad: bool = False, progress=None,
        input: StudyInput = DEFAULT_INPUT) -> FERData:
    labels = need(path / LABELS, "label/label.lst", "ExpW", WHERE)
    out = Collector("ExpW", CLASSES_7, str(path), skip_bad, progress, target=input)
    for _, (name, face, box, label) in parsed_lines(labels, "ExpW label list", parse_line):
        out.add_file(path / ORIGIN / name, label, f"{Path(name).stem}#{face}", "Training", group=Path(name).stem,
                     box=box)
    return out.build()
