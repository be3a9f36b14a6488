"""The table of data sources: which reader turns a ``--data`` spec into :class:`FERData`.

A source is either *named* by a prefix of the spec (``hf:<id>``, ``synthetic[:N]``: not a path, not
cached here) or a *layout* of a local path, recognised by ``matches(path)`` (a folder, an archive, a
CSV): its decoded arrays go to the checked array cache. Layouts are tried in registration order, so a
more specific one registers first. Adding a dataset form is one reader and one registration::

    def read_affectnet(spec: str, *, skip_bad: bool = False, progress=None) -> FERData: ...

    register_source("affectnet", read_affectnet, matches=lambda p: (p / "affectnet.json").exists())

in its own module under ``ferbench/data/``, imported once in ``ferbench/data/__init__.py`` beside the
built-in ones (:mod:`.sources`, :mod:`.synthetic`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..errors import DataError
from ..registry import Table
from .dataset import FERData


class Reader(Protocol):
    def __call__(self, spec: str, *, skip_bad: bool = False,
                 progress: Callable[[int, int, int], None] | None = None) -> FERData: ...


@dataclass(frozen=True)
class DataSource:
    name: str
    read: Reader
    prefix: str | None = None  # a named source: the spec starts with it (not a path)
    matches: Callable[[Path], bool] | None = None  # a local layout: does this path hold it
    sized: bool = False  # the reader decodes at a study's input (``input=``); others are converted after

    @property
    def cached(self) -> bool:
        """Local layouts go through the array cache; named sources keep their own (or need none)."""
        return self.prefix is None


_SOURCES: Table[DataSource] = Table("data source")


def register_source(name: str, read: Reader, *, prefix: str | None = None,
                    matches: Callable[[Path], bool] | None = None, before: str | None = None,
                    sized: bool = False) -> None:
    """Add a source: exactly one of ``prefix`` (named by the spec) or ``matches`` (a local layout).
    ``before``: tried ahead of that source (a dataset's folder layout ahead of the generic image folder)."""
    if (prefix is None) == (matches is None):
        raise ValueError(f"data source {name!r}: give exactly one of prefix= or matches=")
    _SOURCES.add(name, DataSource(name, read, prefix, matches, sized), before=before)


def list_sources() -> list[str]:
    return _SOURCES.names()


def named_source(spec: str) -> DataSource | None:
    """The source a spec names by its prefix (``hf:``, ``synthetic``), or None for a path."""
    return next((s for s in _SOURCES if s.prefix and spec.startswith(s.prefix)), None)


def find_source(spec: str, how_to_get: str) -> DataSource:
    """The source that reads ``spec``: a named one, else the first layout that matches the path."""
    if (named := named_source(spec)) is not None:
        return named
    path = Path(spec)
    if not path.exists():
        raise DataError(f"data path {spec} does not exist. " + how_to_get)
    if not path.is_dir() and not path.is_file():  # a FIFO would block a reader, /dev/zero never end
        raise DataError(f"data path {spec} is not a regular file or folder (a FIFO, device or socket, or a link "
                        "to one); ferbench reads only regular files")
    for source in _SOURCES:
        if source.matches is not None and source.matches(path):
            return source
    if path.is_dir():
        raise DataError(f"data folder {spec} is empty. " + how_to_get)
    raise DataError(f"cannot tell what {spec} is: expected a folder, .zip, .tar.gz, .csv or "
                    + " or ".join(f"{s.prefix}..." for s in _SOURCES if s.prefix))
