"""Each dataset's standard protocol as a split kind, on fixtures of its layout."""
from __future__ import annotations

import numpy as np
import pytest

from dataset_layouts import write_affectnet, write_ferplus, write_rafdb
from ferbench.data import load_data
from ferbench.data.splits import list_split_kinds, make_split
from ferbench.errors import DataError
from ferbench.vocabulary import CLASSES_8


def test_protocol_kinds_are_registered():
    assert {"rafdb", "affectnet", "ferplus", "subject_kfold"} <= set(list_split_kinds())


def test_rafdb_protocol_is_its_train_and_test_lists(tmp_path):
    rows = [(f"train_{k:05d}.jpg", k % 7 + 1) for k in range(28)] + [(f"test_{k:04d}.jpg", k % 7 + 1) for k in range(7)]
    d = load_data(str(write_rafdb(tmp_path / "raf", rows)))
    s = make_split(d, "rafdb", val_fraction=0.25)
    assert len(s.test) == 7 and all(i.startswith("test_") for i in s.test.ids)
    assert len(s.train) + len(s.val) == 28 and len(s.val) == 7
    with pytest.raises(DataError, match="'rafdb' is RAF-DB's protocol; the data is synthetic"):
        make_split(load_data("synthetic:140:0"), "rafdb")


def test_affectnet_protocol_tests_on_validation(tmp_path):
    d = load_data(str(write_affectnet(tmp_path / "an", train=[k % 8 for k in range(32)], val=[0, 1, 2, 3, 9])))
    s = make_split(d, "affectnet", val_fraction=0.25)
    assert len(s.test) == 4 and s.classes == CLASSES_8 and len(s.val) == 8


def test_ferplus_protocol_and_contempt_subset(tmp_path):
    votes = [[0] * 7 + [10, 0, 0], [10] + [0] * 9, [0, 10] + [0] * 8]
    rows = [(u, f"f{u}{k}.png", v) for u in ("Training", "PublicTest", "PrivateTest") for k, v in enumerate(votes)]
    d = load_data(str(write_ferplus(tmp_path / "fp", rows)))
    s = make_split(d, "ferplus", classes=["contempt", "neutral"])  # contempt is not folded into disgust
    assert s.classes == ("contempt", "neutral") and len(s.train) == 2 and len(s.test) == 2


def test_subject_kfold_keeps_subjects_whole():
    d = load_data("synthetic:280:1")
    with pytest.raises(DataError, match="needs subject ids"):
        make_split(d, "subject_kfold", k=3)
    d.groups = np.array([f"S{n % 10:03d}" for n in range(len(d))])
    s = make_split(d, "subject_kfold", k=3, fold=1, val_fraction=0.2)
    parts = [set(s.train.groups), set(s.val.groups), set(s.test.groups)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(s.train) + len(s.val) + len(s.test) == len(d)
