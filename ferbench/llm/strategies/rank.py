"""``rank``: a top-k ranking per image, as Lian et al. (2023) asked GPT-4V for a top-5 list. Parse rule: the
classes named, in the order named (comma-, semicolon-, line- or number-separated items; an item naming no
class or two classes is skipped; a class named twice counts once), cut to ``top_k``; top-1 is the first.
An answer naming no class is unparsed."""
from __future__ import annotations

import re

from ..parse import parse_answer
from .base import Ask, Strategy, StrategyOptions, many_prompt, options_text

_ITEM = re.compile(r"[,;\n|>]|\b\d{1,2}[.)]\s")


class Rank(Strategy):
    name = "rank"
    parse_rule = ("the classes named, in the order named (items separated by commas, semicolons, lines or "
                  "numbers; an item naming no class or two is skipped, a repeat counts once), cut to top_k; "
                  "top-1 is the first; no class named: unparsed")
    ranks = True

    def ask(self, opts: StrategyOptions, ids: list[str]) -> Ask:
        k = min(opts.top_k, len(opts.classes))
        question = (f"Rank the {k} emotions the person in the image most likely shows, most likely first. Your "
                    f"options are: {options_text(opts.classes)}.")
        if len(ids) == 1:
            return Ask(question + f" Answer with the {k} emotions only, comma-separated, most likely first.")
        return Ask(many_prompt(len(ids), ", ".join(f"<emotion {i + 1}>" for i in range(k)), question))

    def ranking(self, answer: str, opts: StrategyOptions) -> list[str]:
        out: list[str] = []
        for item in _ITEM.split(answer):
            cls = parse_answer(item, opts.classes) if item.strip() else None
            if cls is not None and cls in opts.classes and cls not in out:
                out.append(cls)
        return out[: opts.top_k]
