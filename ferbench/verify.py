"""Stored metrics checked against the predictions they are a pure function of.

A result.json is a text file anyone can edit; ``predictions.csv`` is the evidence, vouched for by
its digest. Every evaluation a result lists is recomputed from its rows with the same functions
that scored it (:func:`ferbench.metrics.summarize`, fixed bootstrap seed), compared field by field,
and the recomputed numbers are the ones handed on to tables, so an edited number never reaches a
report. Two fields depend on the probabilities, which predictions.csv rounds to 5 decimals: the
cross-entropy ``loss`` and ``top2_accuracy`` are recomputed from those and replace the stored ones
without comparison.
"""
from __future__ import annotations

import math

import numpy as np

from .llm.outcomes import outcome_counts, top_k_accuracy
from .metrics import summarize
from .predictions import SINGLE_VIEW, Predictions
from .schema.results import EvalMetrics, ExperimentResult

_REPLACED = ("loss", "top2_accuracy")  # recomputed from rounded probabilities: replaced, not compared
_TOL = 1e-9


def _mismatch(stored, fresh, where: str) -> str | None:
    """The first place ``stored`` differs from ``fresh`` (numbers within 1e-9), or None."""
    if isinstance(fresh, (list, tuple)):
        if not isinstance(stored, (list, tuple)) or len(stored) != len(fresh):
            return f"{where} has the wrong shape"
        for i, (s, f) in enumerate(zip(stored, fresh)):
            if (m := _mismatch(s, f, f"{where}[{i}]")) is not None:
                return m
        return None
    if isinstance(fresh, dict):
        for k, f in fresh.items():
            if (m := _mismatch(stored.get(k), f, f"{where}.{k}")) is not None:
                return m
        return None
    if fresh is None or stored is None:
        return None if fresh is stored else f"{where} is {stored!r}, predictions.csv gives {fresh!r}"
    if isinstance(fresh, bool) or isinstance(fresh, int) and isinstance(stored, int):
        return None if stored == fresh else f"{where} is {stored!r}, predictions.csv gives {fresh!r}"
    if not math.isclose(float(stored), float(fresh), rel_tol=0, abs_tol=_TOL):
        return f"{where} is {stored!r}, predictions.csv gives {fresh!r}"
    return None


def _recompute(result: ExperimentResult, part: str, preds: Predictions, k: int) -> EvalMetrics:
    llm = result.kind == "llm"
    rows = np.arange(len(preds.ids)) if llm else preds.rows(part)
    if len(rows) == 0:
        raise ValueError(f"predictions.csv has no {part} rows")
    t, p = preds.true[rows], preds.predicted[rows]
    if t.min() < 0 or t.max() >= k or p.max() >= k or p.min() < (-1 if llm else 0):
        raise ValueError(f"predictions.csv names a class outside 0..{k - 1}")
    proba = None
    if not llm and preds.proba is not None:
        proba = preds.proba[rows]
        if proba.shape[1] != k or not np.isfinite(proba).all():
            raise ValueError("predictions.csv has probabilities of the wrong shape or not finite")
    fresh = summarize(t, p, proba, num_classes=k, no_answer_column=llm)
    if llm:
        fresh.update(outcome_counts(preds["status"][rows], len(rows), fresh["accuracy"]))
        if "ranking" in preds.extra:  # a ranking strategy: top-k from the rankings, k from the config
            k_top = min(result.config.llm.top_k, k)
            fresh.update(top_k=k_top, top_k_accuracy=top_k_accuracy(t, preds["ranking"][rows], k_top, k))
    return EvalMetrics.model_validate(fresh)


def verified_metrics(result: ExperimentResult, preds: Predictions, single_view: bool = False) -> dict[str, EvalMetrics]:
    """The result's metrics (``single_view``: a TTA result's single-view metrics) recomputed from
    ``preds``; ValueError naming the first field that differs."""
    k = len(result.split.classes) if result.split is not None else None
    out = {}
    stored_parts = getattr(result, "single_view", {}) if single_view else result.metrics
    for part, stored in stored_parts.items():
        kk = k if k is not None else len(stored.per_class.support)
        fresh = _recompute(result, part + (SINGLE_VIEW if single_view else ""), preds, kk)
        s, f = stored.model_dump(mode="json"), fresh.model_dump(mode="json")
        for name in _REPLACED:
            s.pop(name, None), f.pop(name, None)
        for name, v in s.items():  # a field this ferbench writes but an older one did not: filled in, not compared
            if v is None:
                f[name] = None
        if (m := _mismatch(s, f, f"{'single_view' if single_view else 'metrics'}.{part}")) is not None:
            raise ValueError(m)
        out[part] = fresh
    return out
