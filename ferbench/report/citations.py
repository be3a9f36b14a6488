"""Each study's reference, from its baselines file: one line for the report and a BibTeX entry for
``references.bib`` beside it. The papers' own text is never shipped or pointed at."""
from __future__ import annotations

from ..schema.baselines import Baselines
from .latex import tex_escape


def cite_text(base: Baselines) -> str:
    """'Karnati, Thapa, McDavitt, Ferguson (2025). Title. Venue.' (no year: 'n.d.')."""
    c = base.citation
    who = ", ".join(a.split()[-1] for a in c.authors) or "authors not named"
    year = c.year or "n.d."
    return f"{who} ({year}). {c.title or base.title}. {c.venue}." + \
        (f" ({c.note})" if c.note else "") + (f" BibTeX key {c.key}." if c.key else "")


def _bib_author(name: str) -> str:
    parts = name.split()
    return tex_escape(f"{parts[-1]}, {' '.join(parts[:-1])}" if len(parts) > 1 else name)


def bibtex(base: Baselines) -> str:
    """A @misc entry (course and project reports have no journal); ASCII, with LaTeX specials escaped."""
    c = base.citation
    fields = [("author", " and ".join(_bib_author(a) for a in c.authors)),
              ("title", "{" + tex_escape(c.title or base.title) + "}"),
              ("howpublished", tex_escape(c.venue)),
              ("year", str(c.year) if c.year else ""),
              ("note", tex_escape(c.note or ""))]
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
    return f"@misc{{{c.key or base.paper},\n{body}\n}}\n"


def references_bib(bases: list[Baselines]) -> str:
    """references.bib: one entry per cited study, in report order, each once."""
    seen, out = set(), ["% References of the studies in this ferbench report (written by ferbench).\n"]
    for b in bases:
        key = b.citation.key or b.paper
        if key not in seen:
            seen.add(key)
            out.append(bibtex(b))
    return "\n".join(out)
