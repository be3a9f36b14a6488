"""One small table type for every extension point (split kinds, data sources, LLM providers): a name
registered twice is an error, an unknown name gets "Did you mean …? Available: …"."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import unknown_name

T = TypeVar("T")


class Table(Generic[T]):
    def __init__(self, what: str, error: Callable[[str], Exception] = ValueError):
        self.what, self._error, self._items = what, error, {}

    def add(self, name: str, item: T, *, before: str | None = None) -> T:
        """Register ``item``; ``before``: ordered ahead of that entry (tables tried in order, e.g. layouts)."""
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        if before is not None and before not in self._items:
            raise ValueError(f"{self.what} {name!r}: no {before!r} to go before")
        entries = list(self._items.items())
        at = len(entries) if before is None else [n for n, _ in entries].index(before)
        entries.insert(at, (name, item))
        self._items = dict(entries)
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise self._error(unknown_name(self.what, name, list(self._items)))
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def copy(self) -> Table[T]:
        """A copy to register into and restore (tests)."""
        other: Table[T] = Table(self.what, self._error)
        other._items = dict(self._items)
        return other
