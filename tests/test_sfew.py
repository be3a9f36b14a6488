"""SFEW 2.0 read as distributed (Train/<Class>/, Val/<Class>/), Val as the test set the field reports on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.errors import DataError

FOLDERS = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


def write_sfew(root: Path, per_class: dict[str, int], test_images: int = 2) -> Path:
    """Train/<Class>/*.png and Val/<Class>/*.png (143x181 RGB aligned faces), and an unlabelled Test/."""
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for c in FOLDERS:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                Image.fromarray(rng.integers(0, 256, (181, 143, 3), dtype=np.uint8)).save(
                    root / split / c / f"{c[:2]}_{split}_{k:03d}.png")
    (root / "Test").mkdir(parents=True, exist_ok=True)
    for k in range(test_images):
        Image.fromarray(rng.integers(0, 256, (181, 143, 3), dtype=np.uint8)).save(root / "Test" / f"t{k}.png")
    return root


def test_sfew_is_recognised_and_val_is_its_test_set(tmp_path):
    root = write_sfew(tmp_path / "SFEW_2", {"Train": 3, "Val": 2}, test_images=4)
    d = load_data(str(root))
    assert d.dataset == "SFEW 2.0" and len(d) == 7 * 5
    assert d.excluded == {"Test/: the challenge's test labels were never released": 4}
    assert "Val/Happy/Ha_Val_001" in set(d.ids)
    happy = d.classes.index("happy")
    assert (d.labels[d.ids == "Val/Happy/Ha_Val_001"] == happy).all()
    s = make_split(d, "holdout", val_fraction=0.34)
    assert sorted(s.test.ids) == sorted(i for i in d.ids if i.startswith("Val/")) and len(s.val) + len(s.train) == 21


def test_fer2013s_kaggle_folder_is_not_taken_for_sfew(tmp_path):
    from ferbench.data.datasets.sfew import is_sfew

    kaggle = write_sfew(tmp_path / "kaggle", {"train": 1, "test": 1}, test_images=0)
    assert not is_sfew(kaggle)  # lowercase train/ and test/ with class folders: FER2013's layout
    assert is_sfew(write_sfew(tmp_path / "sfew", {"Train": 1, "Val": 1}, test_images=0))


def test_sfew_class_folder_outside_the_vocabulary_fails_naming_it(tmp_path):
    root = write_sfew(tmp_path / "sfew", {"Train": 1})
    (root / "Train" / "Bored").mkdir()
    with pytest.raises(DataError, match="SFEW class folder .*Bored is not one of"):
        load_data(f"sfew:{root}")
