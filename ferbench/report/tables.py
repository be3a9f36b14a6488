"""A report table: typed cells (text, :class:`Num`, :class:`CI`) rendered to Markdown and HTML with
numbers right-aligned, to LaTeX (a captioned, labelled booktabs float: :mod:`.latex`), and to CSV with
plain numbers (a CI is two columns)."""
from __future__ import annotations

import csv
import io

from tabulate import tabulate

from ..csvsafe import safe_row
from .format import CI, Num, md_escape
from .latex import latex_table, tex_label


class Table:
    """``paper_columns`` (indices) is the column set of the LaTeX table when the full one is too wide for a
    page; ``note_column`` holds prose that LaTeX turns into lettered notes under the table; ``context``
    (the study's title) starts the LaTeX caption."""

    def __init__(self, key: str, title: str, headers: list[str], rows: list[list], note: str = "", *,
                 paper_columns: list[int] | None = None, note_column: int | None = None, context: str = ""):
        self.key, self.title, self.headers, self.rows, self.note = key, title, headers, rows, note
        self.paper_columns, self.note_column, self.context = paper_columns, note_column, context

    def numeric(self, j: int) -> bool:
        """A column is numeric when each of its cells is a number, an interval or empty."""
        cells = [r[j] for r in self.rows if j < len(r)]
        return bool(cells) and all(isinstance(c, (Num, CI)) or c in ("–", "") for c in cells) and \
            any(isinstance(c, (Num, CI)) for c in cells)

    def _align(self) -> list[str]:
        return ["right" if self.numeric(j) else "left" for j in range(len(self.headers))]

    @staticmethod
    def text(cell) -> str:
        return cell.text if isinstance(cell, (Num, CI)) else str(cell)

    def markdown(self) -> str:
        """Untrusted text cells are escaped; numbers are ferbench's own and stay readable."""
        body = [[self.text(c) if isinstance(c, (Num, CI)) else md_escape(c) for c in r] for r in self.rows]
        return tabulate(body, headers=[md_escape(h) for h in self.headers], tablefmt="pipe",
                        colalign=self._align(), disable_numparse=True)

    def latex(self) -> str:
        cols = [j for j in (self.paper_columns if self.paper_columns is not None else range(len(self.headers)))
                if j != self.note_column]
        marks, notes, seen = [], [], {}
        for r in self.rows:
            text = str(r[self.note_column]).strip() if self.note_column is not None and self.note_column < len(r) \
                else ""
            if text and text not in seen:
                seen[text] = chr(ord("a") + len(seen) % 26)
                notes.append((seen[text], text))
            marks.append(seen.get(text, ""))
        if self.note:
            notes.append(("", self.note))
        dropped = [self.headers[j] for j in range(len(self.headers)) if j not in cols and j != self.note_column]
        if dropped:
            notes.append(("", f"Also in {self.key}.csv: {', '.join(dropped)}."))
        body = [[self.text(r[j]) if j < len(r) else "" for j in cols] for r in self.rows]
        caption = f"{self.context}: {self.title}" if self.context else self.title
        return latex_table(caption, tex_label(self.key), [self.headers[j] for j in cols], body,
                           [self.numeric(j) for j in cols], marks=marks, notes=notes)

    def csv(self) -> str:
        """Numbers as numbers (no '%', no 'M', no brackets): a CI column becomes '<name> low' and '<name> high'."""
        ci_cols = {j for j in range(len(self.headers)) if any(isinstance(r[j], CI) for r in self.rows if j < len(r))}
        header = []
        for j, h in enumerate(self.headers):
            header += [f"{h} low", f"{h} high"] if j in ci_cols else [h]
        out = []
        for r in self.rows:
            row = []
            for j, c in enumerate(r):
                if j in ci_cols:
                    row += [_plain(c.lo), _plain(c.hi)] if isinstance(c, CI) else ["", ""]
                elif isinstance(c, Num):
                    row.append(_plain(c.value))
                else:
                    row.append("" if c == "–" else str(c))
            out.append(row)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(safe_row(header))
        w.writerows(safe_row(r) for r in out)  # labels and answers come from suites and endpoints
        return buf.getvalue()


def _plain(v: float | int | None) -> str:
    if v is None:
        return ""
    return str(v) if isinstance(v, int) else repr(round(float(v), 6))
