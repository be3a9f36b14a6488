"""``ferbench pack``: gzip the per-image CSV files of a finished run so it can be shared in a repository
(a cross-validation fold's predictions.csv is 1.5 MB; packed, about a third). Every reader takes
``<name>.gz`` where ``<name>`` is absent (:func:`ferbench.store.open_unpacked`), and the digest a result
vouches for is the unpacked content's, so a packed run verifies exactly as the unpacked one did."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .store import RunStore, load_run


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
                if name.endswith(".csv") and (store.exp_dir(r.id) / name).exists():
                    out.packed.append((f"{r.id}/{name}", *store.pack_file(r.id, name, digest)))
    return out
