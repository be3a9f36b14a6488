"""``model: {predictions: FILE.csv}``: a model that can no longer be queried, scored from its published
per-image answers (e.g. GPT-4V's on RAF-DB) in the same tables, CIs and McNemar tests as every other model.

The file is one label per row (``id, predicted[, p_<class>...]``) or Lian et al.'s ranked answers
(``name, gt, gpt4v``); see :mod:`.published` for both formats and how ids are matched. The model is
scored on the images the file covers: top-1 in every table, top-k where a ranking is given; coverage,
missing, unknown and ambiguous ids, and a ``gt`` column's disagreements with the dataset are recorded.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..metrics import summarize
from ..schema.experiment import LoadExperiment
from .context import Context, Outcome
from .published import EXAMPLES, gt_disagreements, match_answers, read_answers, top_k


def _part_record(part, idx: list[int], answers: list, classes, ranked: bool) -> dict:
    covered = set(idx)
    missing = [str(i) for n, i in enumerate(part.ids) if n not in covered]
    labels = part.labels[idx]
    depth = max((len(a.ranking) for a in answers), default=1) if ranked else 1
    gt = gt_disagreements(answers, labels, part.ids[idx], classes)
    return {"covered": len(idx), "total": len(part), "missing": len(missing), "missing_examples": missing[:EXAMPLES],
            "top_k": {str(k): top_k(labels, [a.ranking for a in answers], k) for k in range(1, depth + 1)} if idx else {},
            "gt_checked": sum(a.gt is not None for a in answers), "gt_disagree": len(gt), "gt_examples": gt[:EXAMPLES]}


def _notes(parts: dict, info: dict) -> list[str]:
    notes = []
    for name, p in parts.items():
        if name == "val" and not p["covered"]:  # published files usually answer the test set only
            continue
        note = f"{name}: scored on the {p['covered']:,} of {p['total']:,} images the file answers"
        if p["missing"]:
            note += f" ({p['missing']:,} missing, e.g. {', '.join(p['missing_examples'][:3])})"
        if len(p["top_k"]) > 1:
            note += "; " + ", ".join(f"top-{k} {v:.2%}" for k, v in p["top_k"].items())
        if p["gt_disagree"]:
            note += (f"; its gt column disagrees with the dataset on {p['gt_disagree']:,} of {p['gt_checked']:,} "
                     f"images (e.g. {p['gt_examples'][0]}); the dataset's labels are used")
        notes.append(note)
    for what in ("unknown", "ambiguous"):
        if info[what]:
            notes.append(f"{info[what]:,} {what} id(s) left unscored, e.g. {', '.join(info[what + '_examples'][:3])}")
    return notes


def run_predictions(exp: LoadExperiment, ctx: Context) -> Outcome:
    t0 = time.perf_counter()
    split, path = ctx.split, Path(exp.user_model.predictions)
    file = read_answers(path, split.classes)
    has_p = next(iter(file.answers.values())).probs is not None if file.answers else False
    parts_in = [(n, p) for n, p in (("val", split.val), ("test", split.test)) if p is not None and len(p)]
    all_ids = np.concatenate([p.ids for _, p in parts_in]) if parts_in else np.array([])
    matched = match_answers(file.answers, all_ids)
    metrics, rows, coverage, parts, offset = {}, [], {}, {}, 0
    for part_name, part in parts_in:
        idx = sorted(n - offset for n in matched.by_image if offset <= n < offset + len(part))
        answers = [matched.by_image[n + offset] for n in idx]
        offset += len(part)
        coverage[part_name] = (len(idx), len(part))
        parts[part_name] = _part_record(part, idx, answers, split.classes, file.ranked)
        if not idx:
            continue
        pred = np.array([a.ranking[0] for a in answers])
        proba = np.array([a.probs for a in answers], dtype=np.float64) if has_p else None
        metrics[part_name] = summarize(part.labels[idx], pred, proba, num_classes=len(split.classes))
        rows += [[part.ids[n], part_name, int(part.labels[n]), int(p), *(f"{q:.5f}" for q in (a.probs if has_p else ()))]
                 for n, p, a in zip(idx, pred, answers)]
    if "test" not in metrics and split.test is not None:
        raise DataError(f"{path} answers none of the study's {len(split.test):,} test images (ids such as "
                        f"{str(split.test.ids[0])!r}); its ids must be the dataset's image ids or file names")
    info = {"format": "ranked" if file.ranked else "label", "rows": len(file.answers),
            "unknown": len(matched.unknown), "unknown_examples": [i[:80] for i in matched.unknown[:EXAMPLES]],
            "ambiguous": len(matched.ambiguous), "ambiguous_examples": [i[:80] for i in matched.ambiguous[:EXAMPLES]],
            "parts": parts}
    header = ["id", "split", "true", "predicted", *((f"p_{c}" for c in split.classes) if has_p else ())]
    notes = _notes(parts, info)
    fields = {"metrics": metrics, "model": None, "history": [], "input": "published per-image answers",
              "gradcam": {"available": False, "reason": "a predictions file has no network to explain"},
              "timing": {"evaluation_seconds": time.perf_counter() - t0},
              "load": {"file": str(path), "format": "predictions", "outputs": "probabilities" if has_p else "labels",
                       "outputs_detected": False, "notes": notes, "coverage": coverage, "published": info},
              "model_info": {"name": exp.label, "study": "user", "paper": "published predictions",
                             "input": "published per-image answers", "notes": "; ".join(notes)}}
    return Outcome(fields, predictions=(header, rows))
