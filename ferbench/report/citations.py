"""Each study's reference, from its baselines file: one line for the report and a BibTeX entry for
``references.bib`` beside it. The papers' own text is never shipped or pointed at."""
from __future__ import annotations

from .latex import tex_escape


def cite_text(base: dict) -> str:
    """'Karnati, Thapa, McDavitt, Ferguson (2025). Title. Venue.' (no year: 'n.d.')."""
    c = base.get("citation") or {}
    who = ", ".join(a.split()[-1] for a in c.get("authors") or []) or "authors not named"
    year = c.get("year") or "n.d."
    return f"{who} ({year}). {c.get('title') or base.get('title', '')}. {c.get('venue', '')}." + \
        (f" ({c['note']})" if c.get("note") else "") + (f" BibTeX key {c['key']}." if c.get("key") else "")


def _bib_author(name: str) -> str:
    parts = name.split()
    return tex_escape(f"{parts[-1]}, {' '.join(parts[:-1])}" if len(parts) > 1 else name)


def bibtex(base: dict) -> str:
    """A @misc entry (course and project reports have no journal); ASCII, with LaTeX specials escaped."""
    c = base.get("citation") or {}
    fields = [("author", " and ".join(_bib_author(a) for a in c.get("authors") or [])),
              ("title", "{" + tex_escape(c.get("title") or base.get("title", "")) + "}"),
              ("howpublished", tex_escape(c.get("venue", ""))),
              ("year", str(c["year"]) if c.get("year") else ""),
              ("note", tex_escape(c.get("note", "")))]
    body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields if v)
    return f"@misc{{{c.get('key') or base['paper']},\n{body}\n}}\n"


def references_bib(bases: list[dict]) -> str:
    """references.bib: one entry per cited study, in report order, each once."""
    seen, out = set(), ["% References of the studies in this ferbench report (written by ferbench).\n"]
    for b in bases:
        key = (b.get("citation") or {}).get("key") or b["paper"]
        if key not in seen:
            seen.add(key)
            out.append(bibtex(b))
    return "\n".join(out)
