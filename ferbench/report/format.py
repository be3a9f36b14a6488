"""Formatting helpers shared by every report table and both output formats."""
from __future__ import annotations

import re
from dataclasses import dataclass

DASH = "–"


def pct(x: float | None, digits: int = 2) -> str:
    return DASH if x is None else f"{100 * x:.{digits}f}"


def p_text(p: float | None) -> str:
    """Exact McNemar p-values: '< 0.001' below a thousandth (three decimals would print 0.000)."""
    if p is None:
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def num(x: float | None, fmt: str = "{:.3f}") -> str:
    return DASH if x is None else fmt.format(x)


def count_text(n: int | None) -> str:
    """A parameter count readable at any size: 1,080 -> '1.1 k', 2,345,678 -> '2.35 M' (never '0.00 M')."""
    if n is None:
        return DASH
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} M"
    return f"{n / 1e3:.1f} k" if n >= 1000 else str(n)


def run_label(label: str, fold: int | None = None, seed: int | None = None, seeds: int = 1) -> str:
    """One name for a result in every table and figure: folds 1-based, seeds only when several ran."""
    out = label
    if fold is not None:
        out += f" (fold {fold + 1})"
    if seeds > 1 and seed is not None:
        out += f" seed {seed}"
    return out


_MD_SPECIAL = re.compile(r"[\\`*\[\]<>|&]")


def md_escape(text: object) -> str:
    """Free text (labels, notes, errors, model answers, suite text) made inert in Markdown: every
    character that opens a code span, a link, an HTML tag or an entity, or that ends a table cell,
    is backslash-escaped (CommonMark), and lines join into one. ('_' stays: intraword underscores,
    as in snake_case names, never start emphasis in CommonMark.)"""
    s = " ".join(str(text).splitlines())
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(), s)


@dataclass(frozen=True)
class Num:
    """A numeric table cell: ``value`` goes to CSV, ``text`` to Markdown/HTML/LaTeX."""
    value: float | None
    text: str

    @classmethod
    def pct(cls, x: float | None, digits: int = 2) -> "Num":
        return cls(None if x is None else 100 * x, pct(x, digits))

    @classmethod
    def of(cls, x: float | None, fmt: str = "{:.3f}") -> "Num":
        return cls(x, num(x, fmt))

    @classmethod
    def count(cls, k: int, n: int) -> "Num":
        """'4/5': a share of a handful of images reads as counts, not as 80.00."""
        return cls(k / n if n else None, f"{k}/{n}")

    @classmethod
    def p(cls, p: float | None) -> "Num":
        return cls(p, p_text(p))

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class CI:
    """A confidence interval cell (percent); two numeric columns in CSV."""
    lo: float | None
    hi: float | None

    @classmethod
    def of(cls, ci) -> "CI":
        return cls(*(100 * v for v in ci)) if ci else cls(None, None)

    @property
    def text(self) -> str:
        return DASH if self.lo is None else f"[{self.lo:.1f}, {self.hi:.1f}]"

    def __str__(self) -> str:
        return self.text
