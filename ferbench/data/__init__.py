"""Data layer: locate FER2013, load any form of it into :class:`FERData`, cache, split."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from . import cache as _cache
from .dataset import USAGES, FERData
from .sources import HOW_TO_GET, READERS, detect_kind, read_hf
from .synthetic import make_synthetic

__all__ = ["FERData", "USAGES", "load_data", "resolve_data_spec", "describe"]


def resolve_data_spec(cli: str | None = None, suite: str | None = None,
                      suite_dir: Path | None = None) -> tuple[str, str]:
    """(spec, where-it-came-from) by the documented order: --data, $FERBENCH_DATA, the suite's data:."""
    if cli:
        return cli, "--data"
    if os.environ.get("FERBENCH_DATA"):
        return os.environ["FERBENCH_DATA"], "$FERBENCH_DATA"
    if suite:
        if suite_dir is not None and not suite.startswith(("hf:", "synthetic")) and not Path(suite).is_absolute():
            candidate = suite_dir / suite
            suite = str(candidate) if candidate.exists() or not Path(suite).exists() else suite
        return suite, "suite data:"
    raise DataError("no FER2013 data given: looked at --data, $FERBENCH_DATA and the suite's 'data:' entry. "
                    + HOW_TO_GET + " For a dataset-free try-out use --data synthetic.")


def load_data(spec: str, *, skip_bad: bool = False, use_cache: bool = True) -> FERData:
    """Load ``spec`` (path, ``hf:<id>[:config]`` or ``synthetic[:N[:SEED]]``) into memory.

    Decoded arrays of local sources are cached (see :mod:`ferbench.data.cache`); ``skip_bad`` skips
    unreadable images and lists them in ``FERData.skipped`` instead of failing.
    """
    if spec.startswith("synthetic"):
        parts = spec.split(":")
        try:
            n = int(parts[1]) if len(parts) > 1 else 3500
            seed = int(parts[2]) if len(parts) > 2 else 0
        except ValueError:
            raise DataError(f"bad synthetic spec {spec!r}: use synthetic[:N[:SEED]]") from None
        return make_synthetic(n, seed)
    kind = detect_kind(spec)
    if kind == "hf" and spec.startswith("hf:"):
        return read_hf(spec)  # datasets keeps its own cache
    key = _cache.source_key(spec, skip_bad=skip_bad) if use_cache else None
    if key and (hit := _cache.load_cached(key)) is not None:
        return hit
    data = read_hf(spec) if kind == "hf" else READERS[kind](Path(spec), skip_bad=skip_bad)
    if key:
        _cache.save_cached(key, data)
    return data


def describe(data: FERData, spec: str) -> dict:
    """What `ferbench data info` prints: source, counts per usage x class, cache location."""
    counts = data.counts()
    info = {"source": spec, "images": len(data), "counts": counts,
            "totals": {u: sum(c.values()) for u, c in counts.items()},
            "skipped": data.skipped}
    if not spec.startswith(("hf:", "synthetic")):
        info["cache"] = str(_cache.cache_path(_cache.source_key(spec, skip_bad=False)))
    return info
