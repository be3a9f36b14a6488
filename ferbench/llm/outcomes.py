"""What became of each image an LLM was asked about, and the counts a result stores.

Outcomes: ``ok`` (the answer names a class under the strategy's parse rule), ``unparsed`` (an answer naming
no class), ``refusal`` (the server's refusal field, or an answer that declines in words and names no class),
``filtered`` (finish_reason ``content_filter``), ``truncated`` (cut by the completion budget, naming no class),
``error`` and ``not_sent``. Every one but ``ok`` is counted wrong and stays in the denominator; the store's
check (:mod:`ferbench.verify`) recounts them from predictions.csv with :func:`outcome_counts`.
"""
from __future__ import annotations

import re

import numpy as np

from ..metrics import min_detectable_difference

OUTCOMES = ("ok", "unparsed", "refusal", "filtered", "truncated", "error", "not_sent")
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i (?:can ?not|can't|cannot|won'?t|will not|am unable to|'m unable to|"
    r"am not able to) (?:help|assist|determine|identify|analy[sz]e|provide|comply|classify|make)|"
    r"unable to (?:help|assist|determine|identify|analy[sz]e|classify))", re.IGNORECASE)


def looks_like_refusal(text: str | None) -> bool:
    """An answer that declines in words ("I'm sorry, I can't help with identifying people")."""
    return bool(text) and bool(_REFUSAL.search(text))


def outcome(rec: dict, ranking: list[str]) -> str:
    """The outcome of one image's record, given the ranking its answer parsed to (empty: none)."""
    status = rec.get("status") or "error"
    if status not in ("ok", "truncated"):
        return status if status in ("error", "not_sent") else "error"
    if rec.get("finish_reason") == "content_filter":
        return "filtered"  # whatever partial text came, the server withheld the answer
    if rec.get("refusal"):
        return "refusal"
    if ranking:
        return "ok"  # a truncated answer that still names a class counts
    if status == "truncated":
        return "truncated"
    return "refusal" if looks_like_refusal(rec.get("text")) else "unparsed"


def outcome_counts(status, n: int, accuracy: float) -> dict:
    """The LLM counts of a result's metrics from the per-image outcomes (predictions.csv's status column)."""
    s = np.asarray(status)
    c = {o: int((s == o).sum()) for o in OUTCOMES}
    return {"unparsed": c["unparsed"], "refused": c["refusal"], "filtered": c["filtered"],
            "truncated": c["truncated"], "errors": c["error"] + c["not_sent"], "not_sent": c["not_sent"],
            "answered": c["ok"] + c["unparsed"] + c["truncated"] + c["refusal"] + c["filtered"],
            "min_detectable_difference": min_detectable_difference(n, accuracy)}


def ranking_cell(ranking: list[int]) -> str:
    return " ".join(map(str, ranking))


def top_k_accuracy(true, cells, k: int, num_classes: int) -> float:
    """Share of images whose true class is among the first ``k`` of the ranking (predictions.csv cells:
    class indices separated by spaces; an empty cell ranks nothing)."""
    hits = 0
    for t, cell in zip(np.asarray(true), cells):
        ranked = [int(x) for x in str(cell).split()[:k] if x.isdigit() and int(x) < num_classes]
        hits += int(t) in ranked
    return hits / len(cells) if len(cells) else 0.0
