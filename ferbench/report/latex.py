"""LaTeX for a paper: each table as a ``table`` float with a caption and a label, booktabs rules, a column
set that fits the page width (prose columns become lettered notes under the table), and pure ASCII, so
the file compiles with plain pdflatex and ``\\usepackage{booktabs}`` (no inputenc, no fontenc setup).

Markdown and HTML keep the original characters; only the LaTeX is transliterated.
"""
from __future__ import annotations

import re
import string
import unicodedata

# LaTeX's special characters, then the non-ASCII glyphs ferbench's own text uses (dashes, quotes, arrows,
# relations, the warning sign). Anything else is decomposed to ASCII (é -> e) or, failing that, becomes '?'.
_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
            "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}", "<": r"\textless{}",
            ">": r"\textgreater{}", "|": r"\textbar{}"}
_GLYPHS = {"–": "--", "—": "---", "‑": "-", "−": "-", "‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\ldots{}",
           "≈": r"$\approx$", "→": r"$\rightarrow$", "←": r"$\leftarrow$", "≤": r"$\leq$", "≥": r"$\geq$",
           "≠": r"$\neq$", "×": r"$\times$", "±": r"$\pm$", "°": r"$^\circ$", "·": r"$\cdot$", "µ": r"$\mu$",
           "μ": r"$\mu$", "⚠": "(!)", "✓": "yes", "✗": "no", "\u00a0": "~", "§": r"\S{}", "²": r"$^2$"}
_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")


def tex_escape(text: object) -> str:
    """Any text (suite, result, LLM answer) as inert, ASCII-only LaTeX: one line, specials escaped."""
    out = []
    for ch in " ".join(str(text).split()):
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _GLYPHS:
            out.append(_GLYPHS[ch])
        elif ch in _PRINTABLE:
            out.append(ch)
        else:
            plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if c in _PRINTABLE)
            out.append(tex_escape(plain) if plain else "?")
    return "".join(out)


def tex_label(key: str) -> str:
    return "tab:" + re.sub(r"[^A-Za-z0-9:._-]", "-", key)


PAGE_CHARS = 95  # about what fits across \linewidth of a one-column article at \small


def _colspec(numeric: list[bool], text_widths: list[int]) -> str:
    """Numbers right-aligned; when the table would be wider than the page, its widest text columns
    wrap in paragraph columns (each its share of the line) until the rest fits."""
    widths = list(text_widths)
    wrapped: set[int] = set()
    while sum(widths) + 3 * len(widths) > PAGE_CHARS:
        cands = [j for j in range(len(widths)) if not numeric[j] and j not in wrapped and text_widths[j] > 12]
        if not cands:
            break
        j = max(cands, key=lambda k: text_widths[k])
        wrapped.add(j)
        widths[j] = 12
    spare = max(PAGE_CHARS - sum(w for j, w in enumerate(widths) if j not in wrapped) - 3 * len(widths), 12)
    total = sum(text_widths[j] for j in wrapped) or 1
    share = {j: max(0.1, min(0.45, spare * text_widths[j] / total / PAGE_CHARS)) for j in wrapped}
    return "".join("r" if numeric[j] else (f"p{{{share[j]:.2f}\\linewidth}}" if j in wrapped else "l")
                   for j in range(len(numeric)))


def latex_table(caption: str, label: str, headers: list[str], rows: list[list[str]], numeric: list[bool], *,
                marks: list[str] | None = None, notes: list[tuple[str, str]] = ()) -> str:
    """A complete ``table`` float from plain text (escaped here). ``marks[i]`` (a letter or '') goes after
    row i's first cell; ``notes`` are (letter or '', text) lines under the table."""
    widths = [max([len(h)] + [len(r[j]) for r in rows if j < len(r)]) for j, h in enumerate(headers)]
    lines = [r"% ferbench table: needs \usepackage{booktabs}", r"\begin{table}[htbp]", r"\centering", r"\small",
             f"\\caption{{{tex_escape(caption)}}}", f"\\label{{{label}}}",
             f"\\begin{{tabular}}{{{_colspec(numeric, widths)}}}", r"\toprule",
             " & ".join(tex_escape(h) for h in headers) + r" \\", r"\midrule"]
    for i, r in enumerate(rows):
        # a row opening with '[' would be read as the optional argument of the previous row's \\
        cells = [("{}" if str(c).startswith("[") else "") + tex_escape(c) for c in r]
        if marks and marks[i] and cells:
            cells[0] += f"\\textsuperscript{{{marks[i]}}}"
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{0.95\linewidth}\footnotesize"]
        lines += [(f"\\textsuperscript{{{m}}}~" if m else "") + tex_escape(t) + r"\par" for m, t in notes]
        lines.append(r"\end{minipage}")
    return "\n".join(lines + [r"\end{table}", ""])
