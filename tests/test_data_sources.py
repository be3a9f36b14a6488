import tarfile
import zipfile

import numpy as np
import pytest

from ferbench import CLASSES
from ferbench.data import cache as data_cache
from ferbench.data import describe, load_data, resolve_data_spec
from ferbench.errors import DataError

from conftest import REAL_DATA, jpeg_bytes, requires_real_data


def _totals(data):
    return {u: sum(c.values()) for u, c in data.counts().items()}


def test_folder_recovers_official_split_from_prefixes(kaggle_folder):
    root, expected = kaggle_folder
    d = load_data(str(root))
    assert _totals(d) == expected
    assert d.images.shape == (len(d), 48, 48) and d.images.dtype == np.uint8
    assert d.labels.dtype == np.int64 and set(d.labels) == set(range(7))
    assert len(set(d.ids)) == len(d)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_archives_read_in_place(kaggle_folder, tmp_path, fmt):
    root, expected = kaggle_folder
    arch = tmp_path / f"fer.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(arch, "w") as z:
            for p in sorted(root.rglob("*.jpg")):
                z.write(p, p.relative_to(root.parent))
    else:
        with tarfile.open(arch, "w:gz") as t:
            t.add(root, arcname="fer2013")
    d = load_data(str(arch))
    assert _totals(d) == expected
    ref = load_data(str(root), use_cache=False)
    order = np.argsort(ref.ids)
    np.testing.assert_array_equal(np.sort(d.ids), ref.ids[order])


def test_csv_source(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for i, usage in enumerate(["Training"] * 5 + ["PublicTest"] * 2 + ["PrivateTest"] * 3):
        lines.append(f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 2304)))},{usage}")
    p = tmp_path / "fer2013.csv"
    p.write_text("\n".join(lines) + "\n")
    d = load_data(str(p))
    assert _totals(d) == {"Training": 5, "PublicTest": 2, "PrivateTest": 3}
    assert d.labels.tolist() == [i % 7 for i in range(10)]


def test_csv_with_wrong_column_names_the_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("label,pixels,Usage\n0,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"missing column\(s\) emotion; expected the FER2013 challenge header"):
        load_data(str(p))


def test_csv_bad_pixel_row_names_the_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("emotion,pixels,Usage\n0," + " ".join(["1"] * 10) + ",Training\n")
    with pytest.raises(DataError, match="line 2: expected 2304 pixel values"):
        load_data(str(p))


def test_hf_saved_dataset_and_parquet(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(1)
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def split(n):
        return datasets.Dataset.from_dict(
            {"image": [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(n)],
             "label": [i % 7 for i in range(n)]}, features=feats)

    dsd = datasets.DatasetDict({"train": split(14), "validation": split(7), "test": split(7)})
    saved = tmp_path / "saved"
    dsd.save_to_disk(str(saved))
    d = load_data(str(saved))
    assert _totals(d) == {"Training": 14, "PublicTest": 7, "PrivateTest": 7}
    assert d.images.shape[1:] == (48, 48)  # 64x64 RGB converted
    pq = tmp_path / "parquet"
    pq.mkdir()
    for name, ds in dsd.items():
        ds.to_parquet(str(pq / f"{name}-00000.parquet"))
    d2 = load_data(str(pq))
    assert _totals(d2) == _totals(d)


def test_non_48_color_images_are_converted(tmp_path):
    from PIL import Image

    d = tmp_path / "f" / "train" / "happy"
    d.mkdir(parents=True)
    Image.fromarray(np.full((96, 96, 3), 200, np.uint8)).save(d / "Training_1.png")
    data = load_data(str(tmp_path / "f"))
    assert data.images.shape == (1, 48, 48)
    assert abs(int(data.images[0, 10, 10]) - 200) <= 1


def test_missing_path_says_where_to_get_data(tmp_path):
    with pytest.raises(DataError, match=r"does not exist\. Get FER2013 from Kaggle"):
        load_data(str(tmp_path / "nope"))


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        load_data(str(tmp_path / "empty"))


def test_unknown_class_folder(kaggle_folder):
    root, _ = kaggle_folder
    (root / "train" / "bored").mkdir()
    (root / "train" / "bored" / "Training_9.jpg").write_bytes(jpeg_bytes(np.zeros((48, 48), np.uint8)))
    with pytest.raises(DataError, match=r"unknown class folder 'bored'.*expected one of: angry, disgust"):
        load_data(str(root))


def test_corrupt_jpeg_named_or_skipped_and_counted(kaggle_folder):
    root, expected = kaggle_folder
    bad = root / "train" / "happy" / "Training_999.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(DataError, match=r"cannot decode image .*Training_999\.jpg"):
        load_data(str(root))
    d = load_data(str(root), skip_bad=True)
    assert len(d.skipped) == 1 and "Training_999.jpg" in d.skipped[0]
    assert _totals(d) == expected


def test_cache_serves_second_load_without_decoding(kaggle_folder, monkeypatch):
    root, _ = kaggle_folder
    first = load_data(str(root))
    key = data_cache.source_key(str(root), skip_bad=False)
    assert data_cache.cache_path(key).exists()
    monkeypatch.setattr("ferbench.data.READERS", {"folder": lambda *a, **k: pytest.fail("decoded again")})
    second = load_data(str(root))
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.ids, second.ids)


def test_cache_invalidated_when_source_changes(kaggle_folder):
    root, _ = kaggle_folder
    n = len(load_data(str(root)))
    (root / "train" / "sad" / "Training_5555.jpg").write_bytes(jpeg_bytes(np.zeros((48, 48), np.uint8)))
    assert len(load_data(str(root))) == n + 1


def test_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("FERBENCH_DATA", "env-path")
    assert resolve_data_spec("cli-path", "suite-path") == ("cli-path", "--data")
    assert resolve_data_spec(None, "suite-path") == ("env-path", "$FERBENCH_DATA")
    monkeypatch.delenv("FERBENCH_DATA")
    assert resolve_data_spec(None, "synthetic") == ("synthetic", "suite data:")
    with pytest.raises(DataError, match=r"looked at --data, \$FERBENCH_DATA and the suite's 'data:' entry"):
        resolve_data_spec(None, None)


@requires_real_data
def test_real_archive_counts():
    d = load_data(str(REAL_DATA))
    info = describe(d, str(REAL_DATA))
    assert info["totals"] == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert info["counts"]["Training"] == dict(zip(CLASSES, [3995, 436, 4097, 7215, 4830, 3171, 4965]))
    assert info["counts"]["PublicTest"]["disgust"] == 56 and info["counts"]["PrivateTest"]["neutral"] == 626
    assert len(set(d.ids)) == len(d)
