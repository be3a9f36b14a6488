"""``reason_then_answer``: reasoning in ``<think>`` tags, then the class in ``<answer>`` tags (UniFER's
FERBench prompt form). The reasoning is kept in the journal and predictions.csv; the label is read ONLY from
the last ``<answer>...</answer>``, so a reasoning that weighs several emotions parses to the tag's class.
No answer tag: unparsed (never guessed from the reasoning)."""
from __future__ import annotations

import re

from ..parse import parse_answer
from .base import Ask, Strategy, StrategyOptions, options_text

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)


class ReasonThenAnswer(Strategy):
    name = "reason_then_answer"
    parse_rule = ("only the text inside the last <answer>...</answer> tag counts, by the label rule (exactly one "
                  "class); the reasoning before it is kept but never parsed; no tag: unparsed")
    text_limit = 16000  # reasoning runs long and the tag comes last

    def ask(self, opts: StrategyOptions, ids: list[str]) -> Ask:
        opts_text = options_text(opts.classes)
        if len(ids) == 1:
            return Ask("What emotion does the person in the image show? Your options are: " + opts_text + ". First "
                       "think it through inside <think> </think> tags, then give only the emotion you choose inside "
                       "<answer> </answer> tags.")
        n = len(ids)
        return Ask(f"The {n} images below are labelled Image 1 to Image {n}, each with its id. For each image, what "
                   f"emotion does the person show? Your options are: {opts_text}. First think it through inside "
                   "<think> </think> tags; then, inside one <answer> </answer> block, give one line per image, in "
                   "order, exactly in the form `Image <k> (id <id>): <the emotion you choose>`.")

    def answer_part(self, text: str) -> str | None:
        found = _ANSWER.findall(text)
        return found[-1] if found else None

    def ranking(self, answer: str, opts: StrategyOptions) -> list[str]:
        cls = parse_answer(answer, opts.classes)
        return [cls] if cls is not None else []
