"""``label``: one class per image, in the words of the study's prompt template (the behaviour before strategies:
the llm_vs_nn paper's prompt by default). Parse rule: the answer must name exactly one class (synonyms,
inflections and case allowed; a negated class names nothing)."""
from __future__ import annotations

from ..parse import parse_answer
from ..prompts import get_prompt
from .base import Ask, Strategy, StrategyOptions, many_prompt


class Label(Strategy):
    name = "label"
    parse_rule = ("the answer (each image's line, with several images) must name exactly one class; synonyms and "
                  "inflections count, a negated class ('not happy') names none, two different classes name none")

    def ask(self, opts: StrategyOptions, ids: list[str]) -> Ask:
        prompt, fmt = get_prompt(opts.prompt, opts.classes)
        if len(ids) == 1:
            return Ask(prompt, fmt)
        return Ask(many_prompt(len(ids), "<the emotion you choose>", prompt))

    def ranking(self, answer: str, opts: StrategyOptions) -> list[str]:
        cls = parse_answer(answer, opts.classes)
        return [cls] if cls is not None else []
