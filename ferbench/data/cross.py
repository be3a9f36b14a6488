"""Further test sets a study scores its models on (``split: {cross: [PATH, ...]}``): each dataset's own
test partition (PrivateTest: RAF-DB's test, AffectNet's validation, FER+'s and FER2013's PrivateTest), or
every image of a dataset without partitions (CK+, JAFFE)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import load_data
from ..schema.study_input import DEFAULT_INPUT, StudyInput
from .dataset import FERData


def cross_test_set(spec: str, suite_dir: Path | None = None, input: StudyInput = DEFAULT_INPUT) -> FERData:
    """The test partition of one further dataset (every image of one without partitions), at the study's input."""
    data = load_data(_relative(spec, suite_dir), input=input)
    test = data.subset(data.where_usage("PrivateTest"))
    if len(test) == 0 and set(data.usage) == {"Training"}:
        test = data  # a set without partitions (CK+, JAFFE): every image is a test image elsewhere
    if len(test) == 0:
        raise DataError(f"cross-dataset test set {spec} has no test partition (no PrivateTest rows)")
    return test


def cross_test_sets(specs: list[str], suite_dir: Path | None, loaded: dict[str, FERData] | None = None
                    ) -> dict[str, FERData]:
    """{name: test partition} for each spec; names are the datasets' (numbered when one repeats).
    ``loaded``: test sets already read, by spec."""
    out: dict[str, FERData] = {}
    for spec in specs:
        test = loaded[spec] if loaded and spec in loaded else cross_test_set(spec, suite_dir)
        name, n = test.dataset, 2
        while name in out:
            name, n = f"{test.dataset} ({n})", n + 1
        out[name] = test
    return out


def content_fingerprint(test: FERData) -> str:
    """What a cross-dataset result is keyed by: the test images, their ids, labels and classes, not the
    folder's path, so a moved folder is not scored again and a changed one is."""
    h = hashlib.sha256(json.dumps([test.dataset, list(test.classes)]).encode())
    for a in (test.ids.astype(str), test.labels.astype(np.int64), test.images):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _relative(spec: str, suite_dir: Path | None) -> str:
    """A spec's path made relative to the suite, keeping a dataset prefix such as ``rafdb:``."""
    prefix, sep, rest = spec.partition(":")
    from .datasets import DATASETS

    if sep and prefix.lower() in DATASETS and suite_dir is not None and not Path(rest).is_absolute():
        return f"{prefix}:{suite_dir / rest}"
    if suite_dir is not None and not sep and not Path(spec).is_absolute():
        return str(suite_dir / spec)
    return spec


def shared_rows(model_classes: tuple[str, ...], test: FERData) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(rows of ``test`` whose class the model has, their labels as model indices, the classes shared)."""
    shared = tuple(c for c in test.classes if c in model_classes)
    lut = np.array([model_classes.index(c) if c in model_classes else -1 for c in test.classes])
    mapped = lut[test.labels]
    rows = np.flatnonzero(mapped >= 0)
    return rows, mapped[rows], shared
