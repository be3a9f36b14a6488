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


def test_expw_crops_each_face_box(tmp_path):
    from dataset_layouts import write_expw

    faces = [("a.jpg", 0, (10, 20, 80, 90), 3), ("a.jpg", 1, (50, 100, 150, 140), 6), ("b.jpg", 0, (0, 0, 48, 48), 0)]
    d = load_data(str(write_expw(tmp_path / "expw", faces)))
    assert d.dataset == "ExpW" and list(d.ids) == ["a#0", "a#1", "b#0"] and list(d.groups) == ["a", "a", "b"]
    assert [d.classes[y] for y in d.labels] == ["happy", "neutral", "angry"]
    assert d.conversions == {"RGB -> gray (L)": 3, "resized to 48x48": 2}  # the 48x48 box needs no resize
    from PIL import Image
    import numpy as np
    with Image.open(tmp_path / "expw/image/origin/b.jpg") as im:
        want = np.asarray(im.convert("L").crop((0, 0, 48, 48)))
    assert np.abs(d.images[2].astype(int) - want).max() <= 1  # the box, not the whole photo


def test_expw_bad_line_names_the_line(tmp_path):
    from dataset_layouts import write_expw

    write_expw(tmp_path / "expw", [("a.jpg", 0, (10, 20, 80, 90), 7)])
    with pytest.raises(DataError, match="label.lst line 1: expression label 7 is not one of ExpW's 0-6"):
        load_data(str(tmp_path / "expw"))


def test_stratified_split_keeps_photos_whole():
    import numpy as np

    d = load_data("synthetic:350:2")
    d.groups = np.array([f"p{n // 2}" for n in range(len(d))])
    s = make_split(d, "stratified", seed=3)
    assert not set(s.test.groups) & set(s.train.groups) and len(s.train) + len(s.val) + len(s.test) == len(d)


def test_image_folder_with_a_label_map(tmp_path):
    from PIL import Image
    import numpy as np

    root = tmp_path / "mine"
    for split, cls, n in (("train", "joy", 2), ("train", "scorn", 1), ("test", "joy", 1), ("test", "blur", 2)):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            Image.fromarray(np.full((30, 40, 3), 9 * k, np.uint8)).save(root / split / cls / f"{k}.png")
    (root / "labels.yaml").write_text("joy: happiness\nscorn: contempt\nblur: null\n")
    d = load_data(str(root))
    assert d.dataset == "image folder" and d.classes[-1] == "contempt"
    assert d.counts()["Training"]["happy"] == 2 and d.counts()["Training"]["contempt"] == 1
    assert d.counts()["PrivateTest"]["happy"] == 1 and d.excluded == {"class folder 'blur' mapped to null": 2}
    (root / "labels.yaml").write_text("joy: happy\nscorn: contempt\n")
    with pytest.raises(DataError, match="class folder .*blur is not in labels.yaml"):
        load_data(str(root), use_cache=False)
    (root / "labels.yaml").write_text("joy: glee\n")
    with pytest.raises(DataError, match="'glee' \\(for 'joy'\\) is not one of"):
        load_data(str(root), use_cache=False)
