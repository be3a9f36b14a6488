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
    from dataclasses import replace

    from ferbench.data import registry
    table = registry._SOURCES.copy()
    table._items["folder"] = replace(table.get("folder"), read=lambda *a, **k: pytest.fail("decoded again"))
    monkeypatch.setattr(registry, "_SOURCES", table)
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


# --- damaged archives, progress, the Hub offline -----------------------------------------------------

def _tar(root, path, mode):
    with tarfile.open(path, mode) as t:
        t.add(root, arcname="fer2013")
    return path


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_tar_gz_names_the_file(kaggle_folder, tmp_path, cut):
    root, _ = kaggle_folder
    whole = _tar(root, tmp_path / "fer.tar.gz", "w:gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: int(len(whole) * cut)])
    with pytest.raises(DataError, match=r"cut\.tar\.gz is truncated or corrupt \(Compressed file ended .*"
                                        r"images read.*\): download it again"):
        load_data(str(tmp_path / "cut.tar.gz"))
    key = data_cache.source_key(str(tmp_path / "cut.tar.gz"), skip_bad=False)
    assert not data_cache.cache_path(key).exists()  # nothing half-decoded is cached


def test_tar_cut_between_two_members_is_not_taken_for_a_whole_archive(kaggle_folder, tmp_path):
    root, expected = kaggle_folder
    whole = _tar(root, tmp_path / "fer.tar", "w")
    with tarfile.open(whole) as t:
        tenth = [m for m in t.getmembers() if m.isfile()][10]
    # tarfile itself reads this as a complete archive of 10 images
    (tmp_path / "cut.tar").write_bytes(whole.read_bytes()[: tenth.offset])
    with tarfile.open(tmp_path / "cut.tar") as t:
        assert sum(m.isfile() for m in t) == 10
    with pytest.raises(DataError, match=r"cut\.tar is truncated or corrupt \(the archive stops after .* bytes, "
                                        r"without its end-of-archive blocks; 10 images read, the last fer2013/"):
        load_data(str(tmp_path / "cut.tar"))
    assert _totals(load_data(str(whole))) == expected  # a whole plain tar still reads


def test_corrupt_zip_member_and_truncated_zip(kaggle_folder, tmp_path):
    root, _ = kaggle_folder
    arch = tmp_path / "fer.zip"
    with zipfile.ZipFile(arch, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(root.rglob("*.jpg")):
            z.write(p, p.relative_to(root.parent))
    raw = bytearray(arch.read_bytes())
    with zipfile.ZipFile(arch) as z:
        info = z.infolist()[3]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + 20: start + 60] = bytes(40)  # damage the compressed data of the 4th image
    (tmp_path / "bad.zip").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"bad\.zip is truncated or corrupt \(.* while reading fer2013/"):
        load_data(str(tmp_path / "bad.zip"))
    (tmp_path / "half.zip").write_bytes(arch.read_bytes()[: arch.stat().st_size // 2])
    with pytest.raises(DataError, match=r"half\.zip is not a readable zip archive: truncated, corrupt or not a zip"):
        load_data(str(tmp_path / "half.zip"))


@pytest.mark.parametrize("fmt", ["folder", "tar.gz", "zip", "csv"])
def test_progress_reports_images_and_reaches_the_end(kaggle_folder, tmp_path, fmt):
    from ferbench.data import sources

    root, expected = kaggle_folder
    n = sum(expected.values())
    if fmt == "folder":
        path, reader = root, sources.read_folder
    elif fmt == "tar.gz":
        path, reader = _tar(root, tmp_path / "fer.tar.gz", "w:gz"), sources.read_tar
    elif fmt == "zip":
        path, reader = tmp_path / "fer.zip", sources.read_zip
        with zipfile.ZipFile(path, "w") as z:
            for p in sorted(root.rglob("*.jpg")):
                z.write(p, p.relative_to(root.parent))
    else:
        path, reader = tmp_path / "fer2013.csv", sources.read_csv
        rows = [f"{i % 7},{' '.join(['7'] * 2304)},Training" for i in range(n)]
        path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    calls = []
    reader(path, progress=lambda images, done, total: calls.append((images, done, total)))
    assert calls[-1][0] == n and calls[-1][1] == calls[-1][2] > 0
    assert all(0 <= d <= t for _, d, t in calls)


def test_load_data_progress_prints_one_line_per_decode(kaggle_folder):
    import io

    from rich.console import Console

    root, expected = kaggle_folder
    out = io.StringIO()
    load_data(str(root), progress=Console(file=out, width=200))
    assert f"decoded {sum(expected.values())} images from fer2013 in" in out.getvalue()
    out.truncate(0)
    load_data(str(root), progress=Console(file=out, width=200))  # from the cache: nothing decoded
    assert "decoded" not in out.getvalue()


@pytest.fixture
def no_network(monkeypatch):
    """Online as far as the environment says, but every connection attempt fails and is recorded."""
    import socket

    datasets = pytest.importorskip("datasets")
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "FERBENCH_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_hf_id_never_downloads_and_names_the_fetch_command(no_network, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError, match=r"Hugging Face dataset 'nonexistent/x' is not in the local Hugging Face "
                                        r"cache .* ferbench never downloads: fetch it yourself with python -c "
                                        r"\"import datasets; datasets.load_dataset\('nonexistent/x'\)\""):
        load_data("hf:nonexistent/x")
    assert no_network == []  # not one connection attempted, though no offline variable is set
    from huggingface_hub import constants
    assert constants.HF_HUB_OFFLINE is False  # the offline switch is ferbench's only while it loads


def test_local_parquet_loads_with_the_network_refused(no_network, tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [np.zeros((48, 48), np.uint8).tolist()] * 2, "label": [3, 4]})
    (tmp_path / "hf").mkdir()
    ds.to_parquet(str(tmp_path / "hf" / "train-0.parquet"))
    data = load_data(str(tmp_path / "hf"), use_cache=False)
    assert list(data.labels) == [3, 4] and no_network == []


def test_hf_id_offline_not_cached_says_so():
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match=r"'nonexistent/x' is not in the local Hugging Face cache"):
        load_data("hf:nonexistent/x")  # conftest sets HF_HUB_OFFLINE=1
