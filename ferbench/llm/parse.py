"""Map a free-text model answer to a class: case, punctuation, articles, synonyms, inflections.

Returns None when no class, or more than one different class, is named; the caller records the
raw text as ``unparsed`` (counted wrong, listed in the report), never dropping it.
"""
from __future__ import annotations

import json
import re

from ..labels import ALIASES

_WORD = re.compile(r"[a-z]+")
_NEGATION = {"not", "no", "isn't", "isnt", "never", "neither", "nor"}


_CONTEMPT = {"contempt", "contemptuous", "scornful", "disdain"}


def parse_answer(text: str | None, classes: tuple[str, ...] | list[str] | None = None) -> str | None:
    """The class ``text`` names. With ``classes`` holding contempt (FER+, AffectNet-8, CK+), contempt is
    its own class; otherwise it is folded into disgust, the nearest of FER2013's seven."""
    if not text:
        return None
    s = text.strip()
    if s.startswith("{"):
        try:
            v = json.loads(s)
            if isinstance(v, dict) and isinstance(v.get("emotion"), str):
                s = v["emotion"]
        except json.JSONDecodeError:
            pass
    words = _WORD.findall(s.lower().replace("n't", " not"))
    found = []
    for i, w in enumerate(words):
        cls = "contempt" if classes is not None and "contempt" in classes and w in _CONTEMPT else ALIASES.get(w)
        if cls is None:
            continue
        if i > 0 and words[i - 1] in _NEGATION:
            continue  # "not happy" names no class
        found.append(cls)
    distinct = set(found)
    return found[0] if len(distinct) == 1 else None
