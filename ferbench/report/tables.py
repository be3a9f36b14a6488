"""A report table: typed cells (text, :class:`Num`, :class:`CI`) rendered to Markdown and HTML with
numbers right-aligned, to LaTeX (booktabs), and to CSV with plain numbers (a CI is two columns)."""
from __future__ import annotations

import csv
import io

from tabulate import tabulate

from ..csvsafe import safe_row
from .format import CI, Num, md_escape


class Table:
    def __init__(self, key: str, title: str, headers: list[str], rows: list[list], note: str = ""):
        self.key, self.title, self.headers, self.rows, self.note = key, title, headers, rows, note

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
        body = [[self.text(c) for c in r] for r in self.rows]
        return tabulate(body, headers=self.headers, tablefmt="latex_booktabs", colalign=self._align(),
                        disable_numparse=True)

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
