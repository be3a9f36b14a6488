"""``ferbench pack``: gzip the per-image CSV files of a finished run so it can be shared in a repository
(a cross-validation fold's predictions.csv is 1.5 MB; packed, about a third). Every reader takes
``<name>.gz`` where ``<name>`` is absent (:func:`ferbench.store.open_unpacked`), and the digest a result
vouches for is the unpacked content's, so a packed run verifies exactly as the unpacked one did."""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_write_bytes
from .store import MAX_CSV_BYTES, RunStore, _read_bounded, load_run


@dataclass
class PackSummary:
    packed: list[tuple[str, int, int]] = field(default_factory=list)  # (experiment/file, bytes before, after)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (file, why it was not packed)


def pack_run(run_dir: Path | str) -> PackSummary:
    """Pack every CSV file a trustworthy result of ``run_dir`` vouches for. Results that do not verify
    are left as they are (and listed): packing never launders an edited file."""
    out = PackSummary()
    store = RunStore(run_dir)
    with store.lock():
        run = load_run(run_dir)
        out.left_out.extend(run.left_out)
        for r in run.results:
            for name, digest in r.files.items():
                path = store.exp_dir(r.id) / name
                if name.endswith(".csv") and path.exists():
                    out.packed.append(_pack_file(path, digest))
    return out


def _pack_file(path: Path, digest: str) -> tuple[str, int, int]:
    data = _read_bounded(path, MAX_CSV_BYTES)
    if hashlib.sha256(data).hexdigest() != digest:  # changed since load_run verified it
        raise OSError(f"{path} changed while it was being packed; nothing was removed")
    packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same run packs to the same bytes
    atomic_write_bytes(f"{path}.gz", packed)
    path.unlink()
    return f"{path.parent.name}/{path.name}", len(data), len(packed)
