"""Decoded-array cache: a source is decoded once, later loads map its arrays from disk.

One folder per source (``fer-<key>/`` with one ``.npy`` per array and ``meta.json``). Images are
memory-mapped copy-on-write: pages come straight from the OS page cache, without the
page-faulting copy that unpacking an ``.npz`` into fresh memory costs.
The key covers the source's resolved path, size and modification time (every file's, for a folder),
the reader options and the cache format, so a changed source is never served stale.

A cache folder may be damaged or come from someone else: ``meta.json`` records each array file's
sha256, checked on every load (about 0.2 s for the 83 MB of FER2013's images), arrays are loaded
without pickle and checked for type, shape and label range, and anything that fails is decoded
again. A folder is written under a temporary name that carries the writer's host and pid and is
renamed into place when complete; a temporary folder left by a killed process (its pid is gone, or
it is older than :data:`STALE_SECONDS`) is removed by the next load.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import STALE_SECONDS, is_disk_full, remove_stale_temps, temp_prefix  # noqa: F401 - re-exported
from ..environment import cache_root
from ..errors import DiskFullError, FerbenchError
from ..schema.study_input import StudyInput
from .dataset import FERData

FORMAT = 4  # 3: meta.json holds the arrays' sha256; 4: the dataset, its classes, exclusions, soft labels
_ARRAYS = ("images", "labels", "ids", "usage")
MAX_META_BYTES = 50_000_000  # the list of skipped files of a huge source, at most


def cache_dir() -> Path:
    return cache_root()


def check_cache_writable() -> Path:
    """The cache folder, made if needed; FerbenchError in one line if nothing can be written there
    (a read-only file system, a path under a plain file). Checked before a run writes anything, so
    no cache writer (decoded data, LLM answers, calibration) ends the run in a traceback later."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise FerbenchError(f"the cache folder {root} cannot be written ({exc.strerror or exc}); set FERBENCH_CACHE "
                            "to a writable folder") from None
    return root


def source_key(spec: str, **options) -> str:
    h = hashlib.sha256(f"v{FORMAT}|{sorted(options.items())}".encode())
    path = Path(spec).resolve()
    h.update(str(path).encode())
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                st = os.stat(os.path.join(root, f))
                h.update(f"{os.path.relpath(os.path.join(root, f), path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        st = path.stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def input_key(input: StudyInput) -> dict:
    """The study input's part of a cache key: none at the default, so FER2013's keys stay as they were."""
    return {} if input.is_default else {"input": input.describe()}


def cache_path(key: str) -> Path:
    return cache_dir() / f"fer-{key}"


def _open_regular(path: Path):
    """A cache file for reading: a regular file, not a link, FIFO or device (a planted FIFO would block
    the load, a link to /dev/zero never end it); ValueError otherwise."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with _open_regular(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_meta(p: Path) -> dict:
    with _open_regular(p / "meta.json") as fh:
        raw = fh.read(MAX_META_BYTES + 1)
    if len(raw) > MAX_META_BYTES:
        raise ValueError("meta.json too large")
    meta = json.loads(raw)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("sha256"), dict):
        raise ValueError("not a cache folder of this format")
    return meta


def _check_arrays(a: dict[str, np.ndarray], n_classes: int = 7, shape: tuple[int, ...] | None = None) -> None:
    """What every reader produces; anything else is not served, whatever its checksums say. ``shape``: one
    image's, as the study's input declares it."""
    img, lab = a["images"], a["labels"]
    if img.dtype != np.uint8 or not (img.ndim == 3 or (img.ndim == 4 and img.shape[-1] == 3)):
        raise ValueError("images are not uint8 (N, H, W) or (N, H, W, 3)")
    if shape is not None and img.shape[1:] != shape:
        raise ValueError(f"images are {img.shape[1:]}, not the {shape} the key was made for")
    if lab.ndim != 1 or lab.dtype.kind not in "iu" or (len(lab) and (lab.min() < 0 or lab.max() >= n_classes)):
        raise ValueError(f"labels are not class indices 0-{n_classes - 1}")
    soft = a.get("soft")
    if soft is not None and (soft.dtype != np.float32 or soft.shape != (len(lab), n_classes)):
        raise ValueError("soft labels are not float32 (N, classes)")
    for name in ("ids", "usage"):
        if a[name].ndim != 1 or a[name].dtype.kind != "U":
            raise ValueError(f"{name} are not strings")


def load_cached(key: str, shape: tuple[int, ...] | None = (48, 48)) -> FERData | None:
    """The cached arrays of ``key``, or None when there are none or they cannot be trusted (damaged, or not
    images of ``shape``, the study input's)."""
    p = cache_path(key)
    remove_stale_temps(p.parent)
    if not (p / "meta.json").exists():
        return None
    try:
        meta = _read_meta(p)
        for a in _ARRAYS:
            if _sha256(p / f"{a}.npy") != meta["sha256"].get(a):
                raise ValueError(f"{a}.npy does not match its checksum")
        names = (*_ARRAYS, "soft") if "soft" in meta["sha256"] else _ARRAYS
        if "soft" in names and _sha256(p / "soft.npy") != meta["sha256"]["soft"]:
            raise ValueError("soft.npy does not match its checksum")
        arrays = {a: np.load(p / f"{a}.npy", mmap_mode="c" if a == "images" else None, allow_pickle=False)
                  for a in names}
        classes = tuple(str(c) for c in meta["classes"])
        _check_arrays(arrays, len(classes), shape)
        return FERData(**arrays, classes=classes, source=str(meta["source"]), skipped=list(meta["skipped"]),
                       dataset=str(meta["dataset"]), excluded={str(k): int(v) for k, v in meta["excluded"].items()},
                       conversions={str(k): int(v) for k, v in meta["conversions"].items()})
    except Exception:
        return None  # damaged, truncated or foreign: decoded again and rewritten, never trusted


def save_cached(key: str, data: FERData) -> Path:
    """Write the arrays into a temporary folder, then rename it into place (atomic)."""
    p = cache_path(key)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(p.name), dir=p.parent))
        sums = {}
        for a in (*_ARRAYS, "soft") if data.soft is not None else _ARRAYS:
            np.save(tmp / f"{a}.npy", np.asarray(getattr(data, a)), allow_pickle=False)
            sums[a] = _sha256(tmp / f"{a}.npy")
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, "source": data.source,
                                                   "skipped": data.skipped, "sha256": sums,
                                                   "dataset": data.dataset, "classes": list(data.classes),
                                                   "excluded": data.excluded, "conversions": data.conversions}))
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)  # a stale or damaged cache folder
        try:
            os.replace(tmp, p)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process just cached the same source
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise DiskFullError(f"no space left on the device holding the data cache {p.parent} while writing "
                                f"{p.name}; free some space there or set FERBENCH_CACHE to a folder with room "
                                "(the decoded arrays take about 100 MB)") from None
        raise
    return p
