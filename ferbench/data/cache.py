"""Decoded-array cache: a source is decoded once, later loads map its arrays from disk.

One folder per source (``fer-<key>/`` with one ``.npy`` per array and ``meta.json``). Images are
memory-mapped copy-on-write: loading costs milliseconds and pages come straight from the OS page
cache, without the page-faulting copy that unpacking an ``.npz`` into fresh memory costs.
The key covers the source's resolved path, size and modification time (every file's, for a folder),
the reader options and the cache format, so a changed source is never served stale.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..environment import cache_root
from .dataset import FERData

FORMAT = 2
_ARRAYS = ("images", "labels", "ids", "usage")


def cache_dir() -> Path:
    return cache_root()


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


def cache_path(key: str) -> Path:
    return cache_dir() / f"fer-{key}"


def load_cached(key: str) -> FERData | None:
    p = cache_path(key)
    if not (p / "meta.json").exists():
        return None
    try:
        meta = json.loads((p / "meta.json").read_text())
        arrays = {a: np.load(p / f"{a}.npy", mmap_mode="c" if a == "images" else None, allow_pickle=False)
                  for a in _ARRAYS}
        return FERData(**arrays, source=meta["source"], skipped=meta["skipped"])
    except Exception:
        return None  # an unreadable cache is rebuilt, never trusted


def save_cached(key: str, data: FERData) -> Path:
    """Write the arrays into a temporary folder, then rename it into place (atomic)."""
    p = cache_path(key)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
    try:
        for a in _ARRAYS:
            np.save(tmp / f"{a}.npy", np.asarray(getattr(data, a)), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps({"source": data.source, "skipped": data.skipped}))
        if p.exists():
            shutil.rmtree(p)  # a stale or torn cache folder (meta.json is written last)
        os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return p
