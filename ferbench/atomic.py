"""Atomic file writes: a uniquely named temporary file beside the target, fsync, then rename over it.

A reader (or a re-run after a crash) sees either the old file or the new one, never a torn one;
two processes writing the same file never share a temporary name, and a temporary file never
outlives a failed write. Files get the permissions a normal ``open()`` would give them (0666 minus
the umask), not ``mkstemp``'s private 0600. A full disk becomes one
:class:`~ferbench.errors.DiskFullError` naming the file.

A process killed mid-write (SIGKILL, power loss) cannot clean up, so a temporary name carries its
writer's host and pid (``.<name>.tmp-<host>-<pid>.<random>``); :func:`remove_stale_temps` removes
those whose writer is gone, or that are older than :data:`STALE_SECONDS` (another host's).
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .errors import DiskFullError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()
STALE_SECONDS = 6 * 3600  # another host's temporary file is taken for abandoned after this long
_HOST = re.sub(r"[^A-Za-z0-9\-]", "_", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\..*\.tmp-(?P<host>[A-Za-z0-9_\-]+?)-(?P<pid>\d+)\.[^/]*$")


def temp_prefix(name: str) -> str:
    """The start of a temporary name for ``name``: hidden, and naming this host and process."""
    return f".{name}.tmp-{_HOST}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _newest_mtime(p: Path) -> float:
    times = [p.lstat().st_mtime]
    if p.is_dir() and not p.is_symlink():
        times += [f.lstat().st_mtime for f in p.iterdir()]
    return max(times)


def remove_stale_temps(folder: Path, now: float | None = None) -> list[Path]:
    """Remove temporary files and folders in ``folder`` left by a writer that was killed: one of this
    host whose pid is gone, or any older than :data:`STALE_SECONDS`. Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TEMP.match(p.name)
        if m is None:
            continue
        pid = int(m["pid"])
        try:
            gone = m["host"] == _HOST and pid != os.getpid() and not _pid_alive(pid)
            if gone or now - _newest_mtime(p) > STALE_SECONDS:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p)
        except OSError:
            continue  # renamed or removed meanwhile
    return removed


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it was raised from is "no space left" (ENOSPC or a quota):
    torch.save reports a full disk as a RuntimeError raised while handling the OSError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path: Path) -> DiskFullError:
    return DiskFullError(f"no space left on the device holding {path.parent} while writing {path.name}; "
                         "free some space and run again (finished results are kept)")


def _raise_disk_full(exc: BaseException, path: Path) -> None:
    if isinstance(exc, DiskFullError):
        return  # already says which file
    if is_disk_full(exc):
        raise disk_full_error(path) from None


def _write_temp(path: Path, write: Callable[[Any], None], binary: bool) -> str:
    """A synced temporary file beside ``path`` holding what ``write`` wrote; removed if writing fails."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, Exception):
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
