"""Paired comparisons for the LLM table: every LLM against the best trained model, and the LLMs pairwise.

LLM experiments may score different samples (35 images for one, the whole test set through the
Batch API for another): each pair is compared on the images both answered for, by id, and the table
says how many that was. Pure functions of predictions; the report renders what they return.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from ..metrics import mcnemar_exact, min_detectable_difference


def _common(a, b):
    ids_a, ids_b = np.asarray(a[0]).astype(str), np.asarray(b[0]).astype(str)
    pos_b = {i: n for n, i in enumerate(ids_b)}
    sel_a = [n for n, i in enumerate(ids_a) if i in pos_b]
    sel_b = [pos_b[ids_a[n]] for n in sel_a]
    return np.array(sel_a, dtype=int), np.array(sel_b, dtype=int)


def pairwise_mcnemar(models: dict[str, tuple], llms: list[str], best_trained: str | None) -> list[dict]:
    """Rows ``{a, b, n, acc_a, acc_b, b_only_a_right, c_only_b_right, p_value, min_detectable_difference}``.

    ``models``: label -> (ids, y_true, y_pred) with -1 for no answer (counted wrong). Pairs: each LLM
    with ``best_trained`` (if given), then every two LLMs. Pairs sharing no image are left out.
    """
    pairs = [(lbl, best_trained) for lbl in llms if best_trained is not None and lbl != best_trained]
    pairs += list(combinations(llms, 2))
    rows = []
    for a, b in pairs:
        sa, sb = _common(models[a], models[b])
        if len(sa) == 0:
            continue
        ta, pa = np.asarray(models[a][1])[sa], np.asarray(models[a][2])[sa]
        tb, pb = np.asarray(models[b][1])[sb], np.asarray(models[b][2])[sb]
        if not np.array_equal(ta, tb):
            raise ValueError(f"{a} and {b} disagree on the true labels of shared image ids: not the same images")
        res = mcnemar_exact(ta, pa, pb)
        acc_a, acc_b = float((pa == ta).mean()), float((pb == tb).mean())
        rows.append({"a": a, "b": b, "n": len(sa), "acc_a": acc_a, "acc_b": acc_b,
                     "b_only_a_right": res["b"], "c_only_b_right": res["c"], "p_value": res["p_value"],
                     "min_detectable_difference": min_detectable_difference(len(sa), (acc_a + acc_b) / 2)})
    return rows
