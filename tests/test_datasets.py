"""FER+, RAF-DB and AffectNet readers on fixtures in their exact layouts, with their label-order traps."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dataset_layouts import write_affectnet, write_ferplus, write_rafdb
from ferbench.cli import main
from ferbench.data import load_data
from ferbench.data.datasets.ferplus import ferplus_label, soft_label
from ferbench.errors import DataError
from ferbench.vocabulary import CLASSES_8, VOCABULARY, shared_classes

# Vote rows worked by hand: neutral happiness surprise sadness anger disgust fear contempt unknown NF.
HAND_WORKED = [
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "majority", None),       # 1 dropped: 4 of 9 is not > half
    ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], "majority", "neutral"),  # 1s dropped: 6 of 8
    ([5, 0, 0, 3, 1, 0, 0, 0, 1, 0], "majority", "neutral"),  # 5 of 8 (1s dropped; 5 of 10 would fail)
    ([4, 0, 0, 4, 1, 0, 0, 0, 1, 0], "majority", None),       # a tie is no majority
    ([4, 0, 0, 4, 1, 0, 0, 0, 1, 0], "plurality", "neutral"),  # ties go to file order
    ([0, 0, 0, 0, 0, 0, 0, 3, 0, 7], "majority", None),       # NF wins: not a face
    ([0, 0, 0, 0, 0, 0, 0, 6, 4, 0], "majority", "contempt"),  # contempt is its own class, not disgust
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "plurality", None),      # every vote an outlier
    ([0, 2, 0, 0, 0, 0, 0, 0, 3, 0], "plurality", None),      # unknown wins
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "majority", None),
]


@pytest.mark.parametrize("votes,mode,want", HAND_WORKED)
def test_ferplus_rule_on_hand_worked_rows(votes, mode, want):
    assert ferplus_label(votes, mode)[0] == want


def test_ferplus_soft_is_the_distribution_in_vocabulary_order():
    d = soft_label([6, 0, 1, 1, 0, 0, 0, 2, 0, 0])  # neutral 6, contempt 2 (single votes dropped)
    assert d.dtype == np.float32 and d.sum() == pytest.approx(1)
    assert d[VOCABULARY.index("neutral")] == pytest.approx(0.75) and d[VOCABULARY.index("contempt")] == pytest.approx(0.25)


ROWS = [("Training", "fer0000000.png", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("Training", "fer0000001.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),  # no majority
        ("Training", "", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),              # no image name
        ("PublicTest", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 6, 4, 0]),
        ("PrivateTest", "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 3, 0, 7]),  # NF
        ("PrivateTest", "fer0000005.png", [0, 0, 8, 0, 0, 0, 2, 0, 0, 0])]


def test_ferplus_folder_is_recognised_and_counted(tmp_path):
    d = load_data(str(write_ferplus(tmp_path / "fp", ROWS)))
    assert d.dataset == "FER+" and d.classes == CLASSES_8
    assert list(d.ids) == ["Training_1", "PublicTest_4", "PrivateTest_6"]  # FER2013 CSV ids: row numbers
    assert [d.classes[y] for y in d.labels] == ["happy", "contempt", "surprise"]
    assert d.excluded == {"no majority (top class has at most half the votes left)": 1,
                          "no image name (FER+ found no face)": 1, "top class is NF": 1}
    assert d.soft.shape == (3, 8)
    again = load_data(str(tmp_path / "fp"))  # from the checked cache: classes, exclusions, soft labels kept
    assert again.classes == CLASSES_8 and again.excluded == d.excluded and np.array_equal(again.soft, d.soft)
    plural = load_data(f"ferplus-plurality:{tmp_path / 'fp'}")
    assert [plural.classes[y] for y in plural.labels] == ["happy", "neutral", "contempt", "surprise"]


def test_ferplus_without_the_csv_names_both_files_and_the_kaggle_trap(tmp_path):
    root = write_ferplus(tmp_path / "fp", ROWS)
    (root / "fer2013.csv").unlink()
    (root / "train").mkdir()
    with pytest.raises(DataError, match=r"needs fer2013\.csv.*Kaggle JPEG folders.*not row numbers.*microsoft/FERPlus"):
        load_data(str(root))


def test_ferplus_row_count_mismatch_is_one_line(tmp_path):
    root = write_ferplus(tmp_path / "fp", ROWS)
    lines = (root / "fer2013new.csv").read_text().splitlines()
    (root / "fer2013new.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="different numbers of rows"):
        load_data(str(root), use_cache=False)


def test_rafdb_codes_count_from_surprise(tmp_path):
    rows = [("train_00001.jpg", 1), ("train_00002.jpg", 4), ("train_00003.jpg", 7), ("test_0001.jpg", 6),
            ("test_0002.jpg", 3)]
    d = load_data(str(write_rafdb(tmp_path / "raf", rows)))
    assert d.dataset == "RAF-DB" and d.classes == VOCABULARY[:7]
    assert [d.classes[y] for y in d.labels] == ["surprise", "happy", "neutral", "angry", "disgust"]
    assert list(d.usage) == ["Training"] * 3 + ["PrivateTest"] * 2
    assert d.images.shape == (5, 48, 48)
    assert d.conversions == {"RGB -> gray (L)": 5, "resized to 48x48": 5}


def test_rafdb_errors_name_what_is_missing(tmp_path):
    root = write_rafdb(tmp_path / "raf", [("train_00001.jpg", 8)])
    with pytest.raises(DataError, match=r"line 1: expected '<name>\.jpg <1-7>'"):
        load_data(str(root))
    root = write_rafdb(tmp_path / "raf2", [("train_00001.jpg", 2)])
    (root / "basic/Image/aligned/train_00001_aligned.jpg").unlink()
    with pytest.raises(DataError, match="train_00001_aligned.jpg.*line 1.*missing"):
        load_data(str(root))
    with pytest.raises(DataError, match="RAF-DB needs basic/EmoLabel/list_patition_label.txt.*whdeng"):
        load_data(f"rafdb:{tmp_path}")


def test_affectnet_non_emotion_codes_are_excluded_and_counted(tmp_path):
    root = write_affectnet(tmp_path / "an", train=[0, 1, 7, 8, 9, 10, 6], val=[2, 3, 4, 5])
    d = load_data(str(root))
    assert d.dataset == "AffectNet" and d.classes == CLASSES_8
    assert [d.classes[y] for y in d.labels] == ["neutral", "happy", "contempt", "angry", "sad", "surprise", "fear",
                                                "disgust"]
    assert d.counts()["PrivateTest"]["sad"] == 1 and "PublicTest" not in d.counts()
    assert d.excluded == {"expression 8 (none): not an emotion": 1, "expression 9 (uncertain): not an emotion": 1,
                          "expression 10 (no face): not an emotion": 1}
    seven = load_data(f"affectnet7:{root}")
    assert seven.classes == VOCABULARY[:7] and seven.excluded["expression 7 (contempt): not in the 7-class set"] == 1


def test_affectnet_path_may_not_leave_the_image_folder(tmp_path):
    root = write_affectnet(tmp_path / "an", train=[1], val=[2])
    (root / "training.csv").write_text("subDirectory_filePath,expression\n../../etc/passwd,1\n")
    with pytest.raises(DataError, match="leaves Manually_Annotated_Images"):
        load_data(str(root))


def test_shared_classes_of_a_7_class_model_on_an_8_class_set():
    assert shared_classes(VOCABULARY[:7], CLASSES_8) == VOCABULARY[:7]
    assert "contempt" not in shared_classes(VOCABULARY[:7], CLASSES_8)


def test_data_info_prints_dataset_exclusions_and_json(tmp_path):
    root = write_ferplus(tmp_path / "fp", ROWS)
    r = CliRunner().invoke(main, ["data", "info", "--data", str(root), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["dataset"] == "FER+" and info["counts"]["Training"]["happy"] == 1
    assert info["counts"]["PublicTest"]["contempt"] == 1 and info["excluded"]["top class is NF"] == 1
    r = CliRunner().invoke(main, ["data", "info", "--data", str(root)])
    assert r.exit_code == 0 and "excluded 1: no image name" in r.output and "contempt" in r.output
    r = CliRunner().invoke(main, ["data", "info", "--data", f"rafdb:{tmp_path}"])
    assert r.exit_code != 0 and "RAF-DB needs" in r.output and "Traceback" not in r.output
