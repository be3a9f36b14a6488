"""Decoded-array cache: a source is decoded once, later loads read one .npz (well under a second).

The key covers the source's resolved path, size and modification time (every file's, for a folder),
the reader options and the cache format, so a changed source is never served stale.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_with
from .dataset import FERData

FORMAT = 1


def cache_dir() -> Path:
    return Path(os.environ.get("FERBENCH_CACHE") or Path.home() / ".cache" / "ferbench")


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
    return cache_dir() / f"fer-{key}.npz"


def load_cached(key: str) -> FERData | None:
    p = cache_path(key)
    if not p.exists():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            return FERData(z["images"], z["labels"], z["ids"], z["usage"], source=str(z["source"]),
                           skipped=[str(s) for s in z["skipped"]])
    except Exception:
        return None  # an unreadable cache is rebuilt, never trusted


def save_cached(key: str, data: FERData) -> Path:
    p = cache_path(key)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(p, lambda fh: np.savez(fh, images=data.images, labels=data.labels, ids=data.ids,
                                             usage=data.usage, source=np.array(data.source),
                                             skipped=np.array(data.skipped, dtype=str)), binary=True)
    return p
