"""The report as an ordered list of blocks; the Markdown and HTML templates render the same list
(``templates/_document.j2``) with their own block macros, so the two never drift apart."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .tables import Table


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""
    kind: str = "heading"


@dataclass
class Paragraph:
    text: str
    strong: str = ""  # a bold lead-in, e.g. "Not the published settings."
    style: str = ""  # '', 'warn', 'leak', 'fail', 'small'
    kind: str = "paragraph"


@dataclass
class Bullets:
    items: list[str]
    kind: str = "bullets"


@dataclass
class TableBlock:
    table: Table
    kind: str = "table"


@dataclass
class Figure:
    title: str
    path: Path
    caption: str = ""


@dataclass
class Figures:
    figures: list[Figure]
    kind: str = "figures"


@dataclass
class Tile:
    """One sampled image with each model's answer (the LLM-sample grid)."""
    image_id: str
    image_png: bytes
    true: str
    answers: list[tuple[str, str, bool]]  # (model, answer, correct)


@dataclass
class Grid:
    title: str
    tiles: list[Tile]
    note: str = ""
    image_path: Path | None = None  # the same images as one PNG, for the Markdown report
    kind: str = "grid"


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)
    exports: list[Table] = field(default_factory=list)  # tables written to tables/ only (not shown)

    def add(self, *blocks) -> None:
        self.blocks.extend(b for b in blocks if b is not None)

    @property
    def tables(self) -> list[Table]:
        return [b.table for b in self.blocks if isinstance(b, TableBlock)]
