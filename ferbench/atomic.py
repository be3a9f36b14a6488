"""Atomic file writes: a uniquely named temporary file beside the target, fsync, then rename over it.

A reader (or a re-run after a crash) sees either the old file or the new one, never a torn one;
two processes writing the same file never share a temporary name, and a temporary file never
outlives a failed write. Files get the permissions a normal ``open()`` would give them (0666 minus
the umask), not ``mkstemp``'s private 0600. A full disk becomes one
:class:`~ferbench.errors.DiskFullError` naming the file.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import DiskFullError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _raise_disk_full(exc: OSError, path: Path) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFullError(f"no space left on the device holding {path.parent} while writing {path.name}; "
                            "free some space and run again (finished results are kept)") from None


def _write_temp(path: Path, write: Callable[[Any], None], binary: bool) -> str:
    """A synced temporary file beside ``path`` holding what ``write`` wrote; removed if writing fails."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            _raise_disk_full(exc, path)
        raise


def atomic_write_with(path: Path | str, write: Callable[[Any], None], binary: bool = False) -> None:
    path = Path(path)
    tmp = _write_temp(path, write, binary)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def atomic_write_many(files: dict[Path, str]) -> None:
    """Several text files as one unit: every temporary file is written and synced before any is
    renamed into place, so a failure (a full disk) leaves all the old files, not a mixed set."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, text in files.items():
            temps.append((_write_temp(Path(path), lambda fh, text=text: fh.write(text), False), Path(path)))
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_with(path, lambda fh: fh.write(text))


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    atomic_write_with(path, lambda fh: fh.write(data), binary=True)


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_torch_save(path: Path | str, obj: Any) -> None:
    """``torch.save`` through the atomic writer (model files and training checkpoints)."""
    import torch

    atomic_write_with(path, lambda fh: torch.save(obj, fh), binary=True)
