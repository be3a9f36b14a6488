"""Readers for every form FER2013 comes in, all producing :class:`FERData`.

Supported: the Kaggle image folder (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), that folder
as ``.zip`` / ``.tar.gz`` / ``.tgz`` (read in place), the challenge CSV ``fer2013.csv``
(``emotion,pixels,Usage``), and Hugging Face datasets (``hf:<id>[:config]`` from the local Hugging Face
cache only, never downloaded; a ``save_to_disk`` folder or a folder of parquet files).

Images that are not 48x48 grayscale are converted: colour is reduced to luminance (PIL "L")
and the image is resized to 48x48 with bilinear filtering (with antialiasing when shrinking).
A study that declares another input (:mod:`ferbench.schema.study_input`) gets them converted to it
(:func:`conform`), each conversion counted.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import stat
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import CLASSES
from ..errors import DataError
from ..labels import canonical_class
from ..schema.study_input import DEFAULT_INPUT, StudyInput
from .dataset import FERData
from .registry import Reader, register_source

SIZE = 48
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # one image file: FER2013's are ~2 KB, a large photo a few MB
_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
_USAGE_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_")
# Folder-level fallback when file names carry no usage prefix.
_FOLDER_USAGE = {"train": "Training", "training": "Training", "val": "PublicTest",
                 "validation": "PublicTest", "valid": "PublicTest", "public": "PublicTest",
                 "test": "PrivateTest", "private": "PrivateTest"}
_CSV_USAGE = {"training": "Training", "publictest": "PublicTest", "privatetest": "PrivateTest"}

HOW_TO_GET = (
    "Get FER2013 from Kaggle (the image folder 'train/<class>/*.jpg, test/<class>/*.jpg', or its .zip) "
    "or the original challenge file fer2013.csv, then pass it with --data PATH or set $FERBENCH_DATA. "
    "A Hugging Face dataset works too: --data hf:<dataset-id>."
)


# Called while a source decodes as progress(images so far, units read, units in all): bytes of an
# archive or CSV, files of a folder or zip.
Progress = Callable[[int, int, int], None]
_EVERY = 256  # images between progress calls

# What a damaged archive raises while it is read: gzip/zlib errors, a tar or zip stream that ends
# early or fails its checksum, a read error. Each becomes one message naming the file.
_DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, zipfile.BadZipFile, OSError)


def _damaged(path: Path, exc: BaseException, images: int, reading: str | None, last: str | None) -> DataError:
    why = str(exc) or type(exc).__name__
    where = f"while reading {reading}; {images:,} images read before it" if reading else \
        f"{images:,} images read" + (f", the last {last}" if last else "")
    return DataError(f"{path} is truncated or corrupt ({why}; {where}): download it again, or check its size "
                     "against the source's")


def decode_image(raw: bytes, name: str, target: StudyInput = DEFAULT_INPUT) -> np.ndarray:
    """Decode one image file to uint8 ``target`` (48x48 grayscale by default), converting size and colour."""
    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            return _to_canonical(im, target)
    except DataError as exc:
        raise DataError(f"cannot decode image {name}: {exc}") from None
    except UnidentifiedImageError:
        raise DataError(f"cannot decode image {name}: not an image format PIL reads") from None
    except Exception as exc:  # PIL raises many types for bad files; its messages may name the buffer
        why = _BUFFER_REPR.sub("the file", str(exc)) or type(exc).__name__
        raise DataError(f"cannot decode image {name}: {why}") from None


def _to_canonical(im: Image.Image, target: StudyInput = DEFAULT_INPUT) -> np.ndarray:
    if im.mode.startswith("I") or im.mode == "F":
        im = _wide_to_8bit(im)
    mode = "L" if target.channels == 1 else "RGB"
    if im.mode != mode:
        im = im.convert(mode)
    if im.size != (target.size, target.size):
        im = im.resize((target.size, target.size), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(im, dtype=np.uint8)


def conversions_to(size: tuple[int, int], mode: str, target: StudyInput) -> list[str]:
    """What reading an image of ``size`` and PIL ``mode`` as ``target`` converts (bucketed, not per source
    size: AffectNet's sizes all differ)."""
    out = []
    if target.channels == 1 and mode != "L":
        out.append(f"{mode} -> gray (L)")
    elif target.channels == 3 and mode != "RGB":
        out.append(f"{'gray' if mode == 'L' else mode} -> RGB" + (" (channels replicated)" if mode == "L" else ""))
    if size != (target.size, target.size):
        out.append(f"resized to {target.size}x{target.size}")
    return out


def conform(data: FERData, target: StudyInput) -> FERData:
    """``data`` (decoded at 48x48 gray: a CSV's pixels, a Hugging Face set) as ``target``, conversions counted."""
    if len(data) == 0 or data.images.shape[1:] == target.shape:
        return data
    first = data.images[0]
    mode = "L" if first.ndim == 2 else "RGB"
    for what in conversions_to((first.shape[1], first.shape[0]), mode, target):
        data.conversions[what] = data.conversions.get(what, 0) + len(data)
    data.images = np.stack([_to_canonical(Image.fromarray(img), target) for img in data.images])
    return data


def _wide_to_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit grayscale image scaled to 8 bits (PIL's convert('L') would clip every value over 255).
    Other wide modes (32-bit integers beyond 16 bits, floats) have no known scale and are refused."""
    a = np.asarray(im)
    if im.mode.startswith("I;16") or (im.mode == "I" and a.size and a.min() >= 0 and a.max() <= 65535):
        return Image.fromarray(np.round(a.astype(np.float64) / 257.0).astype(np.uint8), mode="L")
    raise DataError(f"pixels of mode {im.mode} (values {a.min() if a.size else 0}..{a.max() if a.size else 0}) "
                    "have no known 8-bit scale; convert the image to 8-bit grayscale")


def _read_capped(read: Callable[[int], bytes], declared: int | None, name: str) -> bytes:
    """At most MAX_IMAGE_BYTES of one image: refused by its declared size first, then while reading."""
    if declared is not None and declared > MAX_IMAGE_BYTES:
        raise DataError(f"{name} declares {declared:,} bytes; an image file is at most {MAX_IMAGE_BYTES:,}")
    data = read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise DataError(f"{name} is more than {MAX_IMAGE_BYTES:,} bytes; an image file is at most that")
    return data


def _read_regular(path: Path) -> bytes:
    """One image file of a folder: a regular file (links followed), never a FIFO, device or socket."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path} is not a regular file (a FIFO, device or socket, or a link to one); "
                            "ferbench reads only regular files")
        return _read_capped(fh.read, st.st_size, str(path))


def _entry_meta(parts: tuple[str, ...], where: str) -> tuple[str, int, str] | None:
    """(usage, label, id) for an image path like .../train/happy/Training_123.jpg, or None if not an image."""
    if len(parts) < 3 or PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_EXTS:
        return None
    split_dir, class_dir, fname = parts[-3].lower(), parts[-2], parts[-1]
    if fname.startswith("."):
        return None
    cls = canonical_class(class_dir)
    if cls is None:
        raise DataError(f"unknown class folder {class_dir!r} in {where}; expected one of: {', '.join(CLASSES)}")
    stem = PurePosixPath(fname).stem
    m = _USAGE_PREFIX.match(stem)
    if m:
        usage = m.group(1)
    elif split_dir in _FOLDER_USAGE:
        usage = _FOLDER_USAGE[split_dir]
    else:
        raise DataError(f"cannot tell the split of {'/'.join(parts)} in {where}: the file name has no "
                        "Training_/PublicTest_/PrivateTest_ prefix and its folder is not train/ or test/")
    # The id carries the class folder: the Kaggle release reuses a few file names across classes.
    return usage, CLASSES.index(cls), f"{class_dir}/{stem if m else f'{usage}_{stem}'}"


def _assemble(entries: Iterable[tuple[tuple[str, ...], Callable[[], bytes]]], where: str, skip_bad: bool,
              progress: Progress | None = None, position: Callable[[], tuple[int, int]] | None = None) -> FERData:
    """Decode every image ``entries`` yields as (path parts, read). ``position`` says how far through
    the source reading is, for ``progress``. An archive that ends early or fails a checksum raises
    one DataError naming it."""
    images, labels, ids, usage, skipped = [], [], [], [], []
    last = reading = None  # the last entry read whole; the one being read
    try:
        for parts, read in entries:
            meta = _entry_meta(parts, where)
            if meta is None:
                continue
            name = f"{where}:{'/'.join(parts)}" if not os.path.isdir(where) else str(Path(where, *parts))
            reading = parts
            try:
                raw = read(name)  # a file too large or not regular counts as a bad image
                last, reading = parts, None
                img = decode_image(raw, name)
            except DataError:
                if not skip_bad:
                    raise
                skipped.append(name)
                continue
            u, y, i = meta
            images.append(img)
            labels.append(y)
            ids.append(i)
            usage.append(u)
            if progress is not None and len(images) % _EVERY == 0:
                progress(len(images), *position())
    except _DAMAGED as exc:
        if os.path.isdir(where):
            raise DataError(f"cannot read {Path(where, *(reading or ()))}: {exc}") from None
        raise _damaged(Path(where), exc, len(images), reading and "/".join(reading), last and "/".join(last)) from None
    if progress is not None:
        progress(len(images), *position())
    if not images:
        raise DataError(f"no images found in {where}: expected train/<class>/*.jpg and test/<class>/*.jpg. "
                        + HOW_TO_GET)
    ids_arr = np.array(ids)
    if len(np.unique(ids_arr)) != len(ids_arr):
        raise DataError(f"{where} holds the same image id more than once")
    data = FERData(np.stack(images), np.array(labels), ids_arr, np.array(usage), source=str(where))
    data.skipped = skipped
    return data


def read_folder(path: Path, skip_bad: bool = False, progress: Progress | None = None) -> FERData:
    files = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        files += [Path(root, f) for f in sorted(names)]
    done = 0

    def entries() -> Iterator:
        nonlocal done
        for full in files:
            done += 1
            yield full.relative_to(path).parts, lambda name, full=full: _read_regular(full)
    return _assemble(entries(), str(path), skip_bad, progress, lambda: (done, len(files)))


def read_zip(path: Path, skip_bad: bool = False, progress: Progress | None = None) -> FERData:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive: truncated, corrupt or not a zip file "
                        f"({exc}); download it again") from None
    with zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename)
        done = 0

        def entries() -> Iterator:
            nonlocal done
            for i in infos:
                done += 1
                yield tuple(PurePosixPath(i.filename).parts), (lambda name, i=i: _read_zip_member(zf, i, name))
        return _assemble(entries(), str(path), skip_bad, progress, lambda: (done, len(infos)))


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    if info.file_size > MAX_IMAGE_BYTES:  # refused before a byte is inflated
        raise DataError(f"{name} declares {info.file_size:,} bytes; an image file is at most {MAX_IMAGE_BYTES:,}")
    with zf.open(info) as fh:
        return _read_capped(fh.read, None, name)


def read_tar(path: Path, skip_bad: bool = False, progress: Progress | None = None) -> FERData:
    with open(path, "rb") as raw:  # the compressed bytes read so far are the progress
        size = os.fstat(raw.fileno()).st_size
        try:
            tf = tarfile.open(fileobj=raw)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is not a readable tar archive: truncated, corrupt or not a tar file "
                            f"({exc}); download it again") from None
        with tf:
            def entries() -> Iterator:
                # Stream members in archive order: random access into a .tar.gz is quadratic.
                for m in tf:
                    if m.isfile():
                        yield tuple(PurePosixPath(m.name).parts), \
                            (lambda name, m=m: _read_capped(tf.extractfile(m).read, m.size, name))
                _check_tar_end(tf)
            return _assemble(entries(), str(path), skip_bad, progress, lambda: (raw.tell(), size))


def _check_tar_end(tf: tarfile.TarFile) -> None:
    """tarfile takes a stream cut exactly between two members for the end of the archive; a whole
    archive ends with zero blocks, and its compressed stream with a checksum (read to the end here)."""
    end = tf.offset  # where the end-of-archive blocks should start
    pos = tf.fileobj.tell()
    while chunk := tf.fileobj.read(1 << 20):
        pos += len(chunk)
    if pos < end + tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"the archive stops after {end:,} bytes, without its end-of-archive blocks")


def _csv_rows(reader, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows with their line numbers; a field over the csv module's bound is one message naming the file."""
    row_no = 1
    try:
        for row_no, row in enumerate(reader, start=2):
            yield row_no, row
    except csv.Error as exc:
        raise DataError(f"{path} line {row_no + 1}: not a FER2013 CSV row ({exc})") from None


def read_csv(path: Path, skip_bad: bool = False, progress: Progress | None = None) -> FERData:
    size = path.stat().st_size
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader, [])]
        except csv.Error as exc:  # e.g. a first line beyond the csv module's field bound
            raise DataError(f"{path} line 1: not a FER2013 CSV header ({exc})") from None
        need = ["emotion", "pixels", "Usage"]
        missing = [c for c in need if c not in header]
        if missing:
            raise DataError(f"{path}: CSV is missing column(s) {', '.join(missing)}; "
                            f"expected the FER2013 challenge header 'emotion,pixels,Usage', got {','.join(header)[:200]!r}")
        ci = {c: header.index(c) for c in need}
        images, labels, usage, ids, skipped = [], [], [], [], []
        for row_no, row in _csv_rows(reader, path):
            where = f"{path} line {row_no}"
            try:
                y = int(row[ci["emotion"]])
                if not 0 <= y < len(CLASSES):
                    raise ValueError(f"emotion {y} is not in 0..6")
                px = np.array(row[ci["pixels"]].split(), dtype=np.int64)
                if px.size != SIZE * SIZE or px.min() < 0 or px.max() > 255:
                    raise ValueError(f"expected {SIZE * SIZE} pixel values in 0..255, got {px.size}")
                u = _CSV_USAGE.get(row[ci["Usage"]].strip().lower())
                if u is None:
                    raise ValueError(f"Usage {row[ci['Usage']]!r} is not Training/PublicTest/PrivateTest")
            except (ValueError, IndexError) as exc:
                if not skip_bad:
                    raise DataError(f"{where}: {exc}") from None
                skipped.append(where)
                continue
            images.append(px.astype(np.uint8).reshape(SIZE, SIZE))
            labels.append(y)
            usage.append(u)
            ids.append(f"{u}_{row_no - 1}")
            if progress is not None and len(images) % _EVERY == 0:
                progress(len(images), fh.buffer.tell(), size)
        if progress is not None:
            progress(len(images), size, size)
    if not images:
        raise DataError(f"{path}: the CSV holds no rows")
    data = FERData(np.stack(images), np.array(labels), np.array(ids), np.array(usage), source=str(path))
    data.skipped = skipped
    return data


# --- Hugging Face ---------------------------------------------------------------------------------
_HF_SPLIT_USAGE = {"train": "Training", "training": "Training", "validation": "PublicTest",
                   "valid": "PublicTest", "val": "PublicTest", "publictest": "PublicTest",
                   "test": "PrivateTest", "privatetest": "PrivateTest"}


def _hf_to_data(dsd, where: str) -> FERData:
    images, labels, ids, usage = [], [], [], []
    for split_name, ds in sorted(dsd.items()):
        u = _HF_SPLIT_USAGE.get(split_name.lower())
        if u is None:
            raise DataError(f"{where}: split {split_name!r} is not one of {', '.join(_HF_SPLIT_USAGE)}")
        cols = ds.column_names
        img_col = next((c for c in ("image", "img", "pixels") if c in cols), None)
        lab_col = next((c for c in ("label", "labels", "emotion") if c in cols), None)
        if img_col is None or lab_col is None:
            raise DataError(f"{where}: split {split_name!r} needs an image column (image/img/pixels) and a label "
                            f"column (label/labels/emotion); it has {', '.join(cols)}")
        names = getattr(ds.features[lab_col], "names", None)
        remap = None
        if names:
            try:
                remap = [CLASSES.index(canonical_class(n) or "?") for n in names]
            except ValueError:
                raise DataError(f"{where}: label names {names} do not match the FER2013 classes") from None
        for k, row in enumerate(ds):
            v = row[img_col]
            if isinstance(v, Image.Image):
                img = _to_canonical(v)
            elif isinstance(v, str):
                img = np.array(v.split(), dtype=np.uint8).reshape(SIZE, SIZE)
            else:
                img = _to_canonical(Image.fromarray(np.asarray(v, dtype=np.uint8)))
            y = int(row[lab_col])
            images.append(img)
            labels.append(remap[y] if remap else y)
            ids.append(f"{u}_{split_name}_{k}")
            usage.append(u)
    if not images:
        raise DataError(f"{where}: the dataset is empty")
    return FERData(np.stack(images), np.array(labels), np.array(ids), np.array(usage), source=where)


HF_LOCAL = ("pass a local copy instead: --data PATH to a folder written by Dataset.save_to_disk or "
            "holding its parquet files")


@contextmanager
def hub_offline():
    """ferbench never downloads data: the Hub libraries' own offline switch is on while a dataset loads,
    whatever the environment says, so an ``hf:`` id is served from the local Hugging Face cache or not
    at all (no request, no retry)."""
    import datasets
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def hf_fetch_hint(ident: str, config: str = "") -> str:
    """The command a user runs themself (with network) to put ``ident`` in the local cache."""
    args = repr(ident) + (f", {config!r}" if config else "")
    return f"python -c \"import datasets; datasets.load_dataset({args})\""


def read_hf(spec: str) -> FERData:
    """``hf:<id>[:config]`` from the local Hugging Face cache (never the Hub), or a local save_to_disk /
    parquet folder."""
    import datasets

    if spec.startswith("hf:"):
        ident, _, config = spec[3:].partition(":")
        try:
            with hub_offline():
                dsd = datasets.load_dataset(ident, config or None)
        except Exception as exc:
            raise DataError(f"Hugging Face dataset {ident!r} is not in the local Hugging Face cache "
                            f"({datasets.config.HF_DATASETS_CACHE}; datasets raised {type(exc).__name__}) and "
                            f"ferbench never downloads: fetch it yourself with {hf_fetch_hint(ident, config)}, "
                            f"or {HF_LOCAL}") from None
        return _hf_to_data(dsd, spec)
    path = Path(spec)
    if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
        dsd = datasets.load_from_disk(str(path))
        if isinstance(dsd, datasets.Dataset):
            dsd = datasets.DatasetDict({"train": dsd})
        return _hf_to_data(dsd, str(path))
    files = sorted(path.rglob("*.parquet"))
    by_split: dict[str, list[str]] = {}
    for f in files:
        split = next((s for s in _HF_SPLIT_USAGE if f.stem.lower().startswith(s)), None)
        if split is None:
            raise DataError(f"{f}: parquet file names must start with the split (train/validation/test)")
        by_split.setdefault(split, []).append(str(f))
    with hub_offline():
        dsd = datasets.load_dataset("parquet", data_files=by_split)
    return _hf_to_data(dsd, str(path))


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()
                              or next(path.rglob("*.parquet"), None) is not None)


def _local(reader: Callable[..., FERData]) -> Reader:
    """A path reader as a registered :class:`Reader` (which takes the spec string)."""
    def read(spec: str, *, skip_bad: bool = False, progress: Progress | None = None) -> FERData:
        return reader(Path(spec), skip_bad=skip_bad, progress=progress)
    return read


def _hf(spec: str, *, skip_bad: bool = False, progress: Progress | None = None) -> FERData:
    return read_hf(spec)


def _suffix(*ends: str) -> Callable[[Path], bool]:
    return lambda path: path.is_file() and path.name.lower().endswith(ends)


register_source("hf", _hf, prefix="hf:")
register_source("hf-folder", _hf, matches=_is_hf_folder)
register_source("folder", _local(read_folder), matches=lambda p: p.is_dir() and any(p.iterdir()))
register_source("zip", _local(read_zip), matches=_suffix(".zip"))
register_source("tar", _local(read_tar), matches=_suffix(".tar.gz", ".tgz", ".tar"))
register_source("csv", _local(read_csv), matches=_suffix(".csv"))
