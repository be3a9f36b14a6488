"""CK+ and JAFFE readers: float label files, codes in file names, subjects as groups for subject folds."""
from __future__ import annotations

import pytest

from dataset_layouts import write_ckplus, write_jaffe
from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.errors import DataError


def test_ckplus_last_three_frames_with_float_codes(tmp_path):
    seqs = {("S005", "001"): "3.0000000e+00", ("S010", "002"): "2.0000000e+00", ("S010", "003"): None,
            ("S011", "001"): "7.0000000e+00"}
    d = load_data(str(write_ckplus(tmp_path / "ck", seqs)))
    assert d.dataset == "CK+" and len(d) == 9
    assert [d.classes[y] for y in d.labels[::3]] == ["disgust", "contempt", "surprise"]  # 2 is contempt, 3 disgust
    assert list(d.ids[:3]) == ["S005_001_00000003", "S005_001_00000004", "S005_001_00000005"]
    assert list(d.groups[::3]) == ["S005", "S010", "S011"]
    assert d.excluded == {"sequence without an emotion label": 1}


def test_ckplus_bad_code_names_the_file(tmp_path):
    write_ckplus(tmp_path / "ck", {("S005", "001"): "8.0000000e+00"})
    with pytest.raises(DataError, match=r"S005_001_00000005_emotion.txt: emotion code 8.0 is not one of CK\+'s 1-7"):
        load_data(str(tmp_path / "ck"))


def test_jaffe_codes_come_from_file_names_and_folds_keep_subjects(tmp_path):
    names = [f"{s}.{c}{t}.{n}.tiff" for n, (s, c, t) in enumerate(
        (s, c, t) for s in ("KA", "KL", "KM", "KR") for c in ("AN", "HA", "NE") for t in (1, 2))]
    d = load_data(str(write_jaffe(tmp_path / "jaffe", names)))
    assert d.dataset == "JAFFE" and len(d) == 24
    assert d.classes[d.labels[0]] == "angry" and d.classes[d.labels[2]] == "happy" and d.classes[d.labels[4]] == "neutral"
    s = make_split(d, "subject_kfold", k=2, fold=0, val_fraction=0.4)
    assert not set(s.test.groups) & (set(s.train.groups) | set(s.val.groups))
