"""Vision-language rows beside the best network: each CLIP, published-answers and LLM row of a study with its
accuracy, UAR (mean per-class recall), the share of images it gave no class, the exact McNemar p against the
best network on the images both scored, and what 1,000 images cost (dollars, or seconds on the device)."""
from __future__ import annotations

import numpy as np

from ..metrics import accuracy_ci, mcnemar_exact
from ..schema.results import StudyMeta
from ..store import RunData
from .document import Paragraph
from .format import CI, DASH, Num
from .study import label_of, n_seeds
from .sweeps import is_sweep_member
from .tables import Table


def _kind(r) -> str:
    if r.kind == "clip":
        return "CLIP zero-shot" if r.clip is None or r.clip.mode == "zero_shot" else "CLIP linear probe"
    if r.kind == "llm":
        return "LLM"
    return "published answers" if r.load is not None and r.load.format == "predictions" else "network"


def _scored(run: RunData, r) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(ids, true, predicted) on the split ``r`` is judged by (an LLM: its sample; -1: no class)."""
    p = run.predictions(r.id)
    if p is None:
        return None
    sel = np.arange(len(p.ids)) if r.kind == "llm" else p.rows(r.headline_split or "test")
    return p.ids[sel].astype(str), p.true[sel], p.predicted[sel]


def _cost(r, n: int) -> str:
    """Dollars (LLM) or seconds on the device (network, CLIP) per 1,000 images; published answers: none."""
    if r.kind == "llm":
        usd = r.usage.estimated_cost_usd
        if usd is not None and n:
            return f"${1000 * usd / n:.2f}"
        return _llm_time(r)
    if r.kind == "clip" and r.clip is not None and r.clip.images_featurized:
        return f"{1000 * r.clip.feature_seconds / r.clip.images_featurized:.2f} s on {r.device}"
    if r.timing and r.timing.inference:
        return f"{r.timing.inference.ms_per_image:.2f} s on {r.device}"
    return DASH


def _llm_time(r) -> str:
    """An unpriced endpoint (a local server): GPU-seconds per 1,000 images where the suite names the GPU, else
    wall seconds; timed over the requests the run sent (answers from the cache or an earlier run are not)."""
    t = r.throughput
    if t is None or not t.images:
        return DASH
    if t.gpu_seconds_per_1000 is not None:
        return f"{t.gpu_seconds_per_1000:.1f} GPU-s on {t.gpu_count} x {t.gpu}" if t.gpu_count > 1 \
            else f"{t.gpu_seconds_per_1000:.1f} GPU-s on {t.gpu}"
    local = r.server is not None
    return f"{1000 * t.query_seconds / t.images:.1f} s wall" + (" (local, GPU not stated)" if local else "")


def _uar(true: np.ndarray, pred: np.ndarray, k: int) -> float:
    return float(np.mean([(pred[true == c] == c).mean() for c in range(k) if (true == c).any()]))


def vlm_table(study: StudyMeta, run: RunData) -> Table | None:
    """The best network first, then every CLIP / published / LLM row, compared on the images both scored."""
    results = [r for r in run.of_study(study.name) if r.ok and r.headline is not None and not is_sweep_member(r)]
    nets = [r for r in results if _kind(r) == "network"]
    others = [r for r in results if _kind(r) != "network"]
    if not others:
        return None
    k, seeds = len(study.classes), n_seeds(results)
    best = max(nets, key=lambda r: r.headline.accuracy) if nets else None
    best_s = _scored(run, best) if best is not None else None
    rows = []
    for r in ([best] if best is not None else []) + others:
        s = _scored(run, r)
        if s is None:
            continue
        ids, true, pred = s
        acc, lo, hi = accuracy_ci(true, pred)
        p_cell, n_cell = Num(None, DASH), DASH
        if r is not best and best_s is not None:
            common = np.intersect1d(ids, best_s[0])
            if len(common):
                a, b = (dict(zip(x[0], range(len(x[0])))) for x in (s, best_s))
                ia, ib = [a[i] for i in common], [b[i] for i in common]
                m = mcnemar_exact(true[ia], np.where(best_s[2][ib] < 0, k, best_s[2][ib]),
                                  np.where(pred[ia] < 0, k, pred[ia]))
                p_cell, n_cell = Num.p(m["p_value"]), f"{len(common):,}"
        name = label_of(r, seeds) if r.kind != "llm" else f"{r.label} (LLM)"
        rows.append([name + (" (best network)" if r is best else ""), _kind(r), Num(len(ids), f"{len(ids):,}"),
                     Num.pct(acc), CI.of((lo, hi)), Num.pct(_uar(true, pred, k)),
                     Num.pct(float((pred < 0).mean())) if r.kind == "llm" else Num(None, DASH),
                     p_cell, n_cell, _cost(r, len(ids))])
    return Table(f"{study.name}_vlm", "Vision-language models beside the best network",
                 ["model", "kind", "images", "acc %", "95% CI (Wilson)", "UAR %", "no class %",
                  "McNemar p vs best network", "images compared", "per 1,000 images"], rows,
                 "UAR: unweighted average recall (mean per-class recall). No class: LLM answers naming no class, "
                 "refusals and failed requests, counted wrong. McNemar: exact two-sided test against the best "
                 "network on the images both scored (a published file or an LLM sample may cover fewer). Per 1,000 "
                 "images: the LLM's estimated price (an unpriced or local server: the wall time of its requests, as "
                 "GPU-seconds where the suite names the GPU), a network's inference time, a CLIP model's image-"
                 "feature time (model loading left out), each on the device named.", paper_columns=[0, 1, 3, 5, 7, 9])


def published_notes(study: StudyMeta, run: RunData) -> list[Paragraph]:
    """Per published answers file: coverage, missing ids, top-k, unknown or ambiguous ids, gt disagreements."""
    out = []
    for r in run.of_study(study.name):
        if r.ok and r.kind == "load" and r.load is not None and r.load.published is not None and r.load.notes:
            style = "warn" if any(p.gt_disagree or p.missing for p in r.load.published.parts.values()) else "small"
            out.append(Paragraph("; ".join(r.load.notes), strong=f"{r.label} (published answers):", style=style))
    return out
