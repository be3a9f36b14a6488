"""JAFFE (Lyons et al. 1998): 213 posed images of 10 Japanese women, 7 classes coded in the file names.

Layout: one folder of ``KA.AN1.39.tiff``-style files: subject ``KA``, expression ``AN`` (AN angry, DI disgust,
FE fear, HA happy, SA sad, SU surprise, NE neutral) with a take number, then the image number. The subject is
each image's group for by-subject folds (``split: {kind: subject_kfold}``). JAFFE has no test partition:
every image is tagged Training. Other files in the folder (README, .DS_Store) are ignored.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import DataError
from ...vocabulary import CLASSES_7, JAFFE_CODES
from ...schema.study_input import DEFAULT_INPUT, StudyInput
from ..dataset import FERData
from ._common import Collector

WHERE = "JAFFE is obtained from its authors (zenodo.org/record/3451524) under a licence; pass its folder with --data"
_FILE = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d*)\.(\d+)\.tiff?$", re.IGNORECASE)


def parse_name(name: str) -> tuple[str, str] | None:
    """(subject, vocabulary class) of a JAFFE file name, None for a file that is not one of its images."""
    m = _FILE.match(name)
    if m is None:
        return None
    code = m.group(2).upper()
    if code not in JAFFE_CODES:
        raise DataError(f"JAFFE file {name}: expression code {code} is not one of {', '.join(JAFFE_CODES)}")
    return m.group(1).upper(), JAFFE_CODES[code]


def is_jaffe(path: Path) -> bool:
    return path.is_dir() and any(_FILE.match(f) for f in os.listdir(path))


def read_jaffe(path: Path, skip_bad: bool = False, progress=None,
        input: StudyInput = DEFAULT_INPUT) -> FERData:
    if not path.is_dir():
        raise DataError(f"JAFFE needs a folder of KA.AN1.39.tiff-style files at {path}. {WHERE}")
    out = Collector("JAFFE", CLASSES_7, str(path), skip_bad, progress, target=input)
    for name in sorted(os.listdir(path)):
        parsed = parse_name(name)
        if parsed is not None:
            subject, label = parsed
            out.add_file(path / name, label, Path(name).stem, "Training", group=subject)
    return out.build()
