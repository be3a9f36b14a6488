"""Data layer: locate FER2013, load any form of it into :class:`FERData`, cache, split."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from ..errors import DataError
from . import cache as _cache
from . import dataset_splits as _dataset_splits  # noqa: F401 - registers each dataset's protocol split kinds
from . import manifest as _manifest  # noqa: F401 - registers the manifest split kind
from . import datasets as _datasets  # noqa: F401 - registers the datasets' layouts and prefixes
from . import synthetic as _synthetic  # noqa: F401 - registers the synthetic source
from .dataset import USAGES, FERData
from .registry import find_source, named_source
from ..schema.study_input import DEFAULT_INPUT, StudyInput
from .sources import HOW_TO_GET, conform

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["FERData", "USAGES", "load_data", "resolve_data_spec", "describe"]


def resolve_data_spec(cli: str | None = None, suite: str | None = None,
                      suite_dir: Path | None = None) -> tuple[str, str]:
    """(spec, where-it-came-from) by the documented order: --data, $FERBENCH_DATA, the suite's data:."""
    if cli:
        return cli, "--data"
    if os.environ.get("FERBENCH_DATA"):
        return os.environ["FERBENCH_DATA"], "$FERBENCH_DATA"
    if suite:
        named = _datasets.split_named(suite)  # rafdb:PATH: the path is the suite's, as a plain one is
        prefix, path = (f"{suite.partition(':')[0]}:", str(named[1])) if named else ("", suite)
        if suite_dir is not None and (named or named_source(suite) is None) and not Path(path).is_absolute():
            candidate = suite_dir / path
            path = str(candidate) if candidate.exists() or not Path(path).exists() else path
        return prefix + path, "suite data:"
    raise DataError("no FER2013 data given: looked at --data, $FERBENCH_DATA and the suite's 'data:' entry. "
                    + HOW_TO_GET + " For a dataset-free try-out use --data synthetic.")


def load_data(spec: str, *, skip_bad: bool = False, use_cache: bool = True,
              progress: Console | None = None, input: StudyInput = DEFAULT_INPUT) -> FERData:
    """Load ``spec`` (path, ``hf:<id>[:config]`` or ``synthetic[:N[:SEED]]``) into memory, its images at
    the study's ``input`` size and colour (48x48 gray by default): the dataset readers decode at it, the
    FER2013 forms (48x48 gray already) are converted after reading; conversions are counted in the data.

    Decoded arrays of local sources are cached (see :mod:`ferbench.data.cache`); ``skip_bad`` skips
    unreadable images and lists them in ``FERData.skipped`` instead of failing. With a rich
    ``progress`` console, decoding a local source (seconds to a minute for FER2013's 35,887 JPEGs)
    shows a bar with the images decoded so far, then one line with the count and the time.
    """
    source = find_source(spec, HOW_TO_GET)
    sized = {"input": input} if source.sized else {}
    if not source.cached:
        return conform(source.read(spec, skip_bad=skip_bad, **sized), input)
    if use_cache:
        _cache.check_cache_writable()  # one line now, not a traceback after minutes of decoding
    key = _cache.source_key(spec, skip_bad=skip_bad, **_cache.input_key(input)) if use_cache else None
    if key and (hit := _cache.load_cached(key, shape=input.shape)) is not None:
        return hit
    if progress is None:
        data = source.read(spec, skip_bad=skip_bad, **sized)
    else:
        with _DecodeProgress(progress, Path(spec).name) as bar:
            data = source.read(spec, skip_bad=skip_bad, progress=bar.update, **sized)
    data = conform(data, input)
    if key:
        where = _cache.save_cached(key, data)
        if progress is not None:
            progress.print(f"[dim]cached the decoded arrays in {escape(str(where))}: later loads take milliseconds[/]")
    return data


class _DecodeProgress:
    """A transient bar while a source decodes (on a terminal; logs get no bar), then one line:
    what was decoded, how many images, how long."""

    def __init__(self, console: Console, name: str):
        from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console, self.name = console, name
        self._bar = Progress(TextColumn("decoding {task.description}"), BarColumn(), TaskProgressColumn(),
                             TextColumn("{task.fields[images]:,} images"), TimeElapsedColumn(),
                             TimeRemainingColumn(), console=console, transient=True) if console.is_terminal else None
        self._images = 0

    def __enter__(self) -> _DecodeProgress:
        self._t0 = time.perf_counter()
        if self._bar is not None:
            self._bar.__enter__()
            self._task = self._bar.add_task(escape(self.name), total=None, images=0)
        return self

    def update(self, images: int, done: int, total: int) -> None:
        self._images = images
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, images=images)

    def __exit__(self, exc_type, *rest) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, *rest)
        if exc_type is None:
            self.console.print(f"decoded {self._images:,} images from {escape(self.name)} in "
                               f"{time.perf_counter() - self._t0:.1f} s")


def describe(data: FERData, spec: str) -> dict:
    """What `ferbench data info` prints: source, counts per usage x class, cache location."""
    counts = data.counts()
    info = {"source": spec, "dataset": data.dataset, "classes": list(data.classes), "images": len(data),
            "counts": counts, "totals": {u: sum(c.values()) for u, c in counts.items()},
            "skipped": data.skipped, "excluded": data.excluded, "conversions": data.conversions}
    if named_source(spec) is None:
        info["cache"] = str(_cache.cache_path(_cache.source_key(spec, skip_bad=False)))
    elif (key := _datasets.named_cache_key(spec, skip_bad=False)) is not None:
        info["cache"] = str(_cache.cache_path(key))
    return info
