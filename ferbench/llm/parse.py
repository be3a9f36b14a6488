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


def _word_class(w: str, has_contempt: bool) -> str | None:
    if has_contempt and w in _CONTEMPT:
        return "contempt"
    if w == "contempt":
        return "disgust"  # a 7-class study: FER2013's nearest class (counted by contempt_folded)
    return ALIASES.get(w)


def _words(text: str) -> list[str]:
    s = text.strip()
    if s.startswith("{"):
        try:
            v = json.loads(s)
            if isinstance(v, dict) and isinstance(v.get("emotion"), str):
                s = v["emotion"]
        except json.JSONDecodeError:
            pass
    return _WORD.findall(s.lower().replace("n't", " not"))


def contempt_folded(text: str | None, classes) -> bool:
    """Whether ``text`` was scored as disgust because it says contempt and the study has no contempt class."""
    return (bool(text) and "contempt" not in (classes or ()) and parse_answer(text, classes) == "disgust"
            and "contempt" in _words(text))


def parse_answer(text: str | None, classes: tuple[str, ...] | list[str] | None = None) -> str | None:
    """The class ``text`` names. With ``classes`` holding contempt (FER+, AffectNet-8, CK+), contempt is
    its own class; otherwise it is folded into disgust, the nearest of FER2013's seven."""
    if not text:
        return None
    words = _words(text)
    has_contempt = classes is not None and "contempt" in classes
    found = []
    for i, w in enumerate(words):
        cls = _word_class(w, has_contempt)
        if cls is None:
            continue
        if i > 0 and words[i - 1] in _NEGATION:
            continue  # "not happy" names no class
        found.append(cls)
    distinct = set(found)
    return found[0] if len(distinct) == 1 else None
