"""Image ids as other people's files name them, matched to a dataset's ids without guessing.

A name matches a dataset id when, lowercased, with an image extension and RAF-DB's ``_aligned`` dropped,
one path is a trailing part of the other: ``/RAF-DB/aligned/test_0001_aligned.jpg`` and ``test_0001``;
AffectNet's bare ``abc.jpg`` and ``3/abc.jpg``. A name matching no id is *unknown*, one matching several is
*ambiguous*; callers count and name both, never pick one.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .sources import IMAGE_EXTS


def id_parts(ident: str) -> tuple[str, ...]:
    """An image id as comparable path parts: lowercased, image extension and RAF-DB's ``_aligned`` dropped.

    >>> id_parts("/RAF-DB/aligned/Test_0001_aligned.JPG")
    ('raf-db', 'aligned', 'test_0001')
    """
    parts = [p for p in str(ident).strip().replace("\\", "/").lower().split("/") if p not in ("", ".")]
    if not parts:
        return ()
    last = parts[-1]
    stem, dot, ext = last.rpartition(".")
    if dot and f".{ext}" in IMAGE_EXTS:
        last = stem
    return (*parts[:-1], last.removesuffix("_aligned"))


def _suffix(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return long_[len(long_) - len(short):] == short


@dataclass
class IdMatch:
    hits: dict[int, int] = field(default_factory=dict)  # position in names -> position in ids
    unknown: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)


def match_ids(names, ids) -> IdMatch:
    """Match each of ``names`` to at most one of ``ids`` (see the module's rule)."""
    by_stem: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
    for n, ident in enumerate(ids):
        parts = id_parts(ident)
        if parts:
            by_stem[parts[-1]].append((parts, n))
    out = IdMatch()
    for k, name in enumerate(names):
        parts = id_parts(name)
        found = [n for p, n in by_stem.get(parts[-1] if parts else "", []) if _suffix(parts, p)]
        if not found:
            out.unknown.append(str(name))
        elif len(found) > 1:
            out.ambiguous.append(str(name))
        else:
            out.hits[k] = found[0]
    return out
