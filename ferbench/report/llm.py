"""The LLM part of a study's report: every model and every LLM on the identical sample (the paper's
Table 2 layout), Wilson CIs, exact McNemar tests, what each sample size can detect, usage and cost,
unparsed answers, and the sample itself as a grid of tiles."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import figures
from ..metrics import accuracy_ci, mcnemar_exact, mcnemar_min_difference
from ..schema.results import StudyMeta
from ..store import RunData
from .document import Figure, Grid, Paragraph, TableBlock, Tile
from .format import CI, DASH, Num
from .study import label_of, n_seeds
from .tables import Table


@dataclass
class _Row:
    name: str
    true: np.ndarray
    pred: np.ndarray  # -1: no answer (unparsed, failed, truncated)
    is_llm: bool


def _sample_rows(study: StudyMeta, run: RunData, ids: np.ndarray) -> list[_Row]:
    """Every model (trained or loaded; first fold of a CV study) and every LLM, on the sample images."""
    rows = []
    models = [r for r in run.models(study.name) if r.fold in (None, 0)]
    seeds = n_seeds(models)
    for r in models:
        p = run.predictions(r.id)
        if p is None:
            continue
        pos = {i: n for n, i in zip(p.rows("test"), p.ids[p.rows("test")])}
        if not all(i in pos for i in ids):
            continue
        sel = np.array([pos[i] for i in ids])
        rows.append(_Row(label_of(r, seeds), p.true[sel], p.predicted[sel], False))
    for r in run.llms(study.name):
        if "sample" not in r.metrics:
            continue
        p = run.predictions(r.id)
        if p is None:
            continue
        pos = {i: n for n, i in enumerate(p.ids)}
        if not all(i in pos for i in ids):
            continue
        sel = np.array([pos[i] for i in ids])
        rows.append(_Row(f"{r.label} (LLM)", p.true[sel], p.predicted[sel], True))
    return rows


def _per_class_cells(t: np.ndarray, pr: np.ndarray, k: int) -> list[Num]:
    out = []
    for c in range(k):
        m = t == c
        out.append(Num.count(int((pr[m] == c).sum()), int(m.sum())) if m.any() else Num(None, DASH))
    return out


def sample_table(study: StudyMeta, rows: list[_Row], n: int) -> tuple[Table, list[Table]]:
    k = len(study.classes)
    trained = [r for r in rows if not r.is_llm]
    best = max(trained, key=lambda r: (r.true == r.pred).mean()) if trained else None
    body = []
    for r in rows:
        acc, lo, hi = accuracy_ci(r.true, np.where(r.pred < 0, k, r.pred))
        p_val = Num(None, DASH)
        mdd = Num(None, DASH)
        if best is not None and r is not best:
            test = mcnemar_exact(r.true, np.where(best.pred < 0, k, best.pred), np.where(r.pred < 0, k, r.pred))
            p_val = Num.p(test["p_value"])
            d = mcnemar_min_difference(n, test["b"] + test["c"])
            mdd = Num(None, "none") if d is None else Num(100 * d, f"{100 * d:.1f}")
        body.append([r.name, *_per_class_cells(r.true, r.pred, k), Num.pct(acc), CI.of((lo, hi)), p_val, mdd])
    per = n // k if n % k == 0 else None
    note = (f"Identical sample of {n} images ({f'{per} per class' if per else 'stratified'}); cells count correct "
            f"answers per class. 95% CIs are Wilson intervals; p is the exact McNemar test against the best trained "
            f"model on this sample{f' ({best.name})' if best else ''}; 'smallest significant gap' is the accuracy "
            f"difference (points) that McNemar could call significant (α = 0.05) given how often the two disagree "
            f"here. One image moves accuracy by {100 / n:.1f} points.")
    table = Table(f"{study.name}_llm_sample", "Per-class results on the LLM sample (Table 2 layout)",
                  ["model", *study.classes, "overall %", "95% CI", f"McNemar p vs {best.name if best else DASH}",
                   "smallest significant gap (pts)"], body, note)
    extra = []
    llms = [r for r in rows if r.is_llm]
    if len(llms) > 1:
        pair_rows = []
        for i, a in enumerate(llms):
            for b in llms[i + 1:]:
                test = mcnemar_exact(a.true, np.where(a.pred < 0, k, a.pred), np.where(b.pred < 0, k, b.pred))
                pair_rows.append([a.name, b.name, Num(test["b"], str(test["b"])), Num(test["c"], str(test["c"])),
                                  Num.p(test["p_value"])])
        extra.append(Table(f"{study.name}_llm_pairs", "LLM against LLM on the same sample (exact McNemar)",
                           ["LLM A", "LLM B", "A right, B wrong", "B right, A wrong", "p"], pair_rows))
    return table, extra


def usage_table(study: StudyMeta, run: RunData) -> Table | None:
    ran = [r for r in run.llms(study.name) if r.status != "skipped"]
    if not ran:
        return None
    rows = []
    for r in ran:
        u = r.usage
        cost = u.get("estimated_cost_usd")
        rows.append([r.label, r.status, *(Num(u.get(k), str(u.get(k, DASH))) for k in
                                           ("requests_sent", "cache_hits", "prompt_tokens", "completion_tokens")),
                     Num(cost, DASH if cost is None else f"${cost:.4f}"),
                     "; ".join(str(a.get("description", a)) for a in r.adaptations), r.error or ""])
    return Table(f"{study.name}_llm_usage", "LLM endpoints: requests, tokens, cost",
                 ["endpoint", "status", "requests", "cache hits", "prompt tok", "completion tok", "est. cost",
                  "adaptations", "note"], rows)


def unparsed_table(study: StudyMeta, run: RunData) -> Table | None:
    rows = [[r.label, u.get("id", ""), str(u.get("raw", ""))[:200]] for r in run.llms(study.name) for u in r.unparsed]
    if not rows:
        return None
    return Table(f"{study.name}_llm_unparsed", "Unparsed LLM answers (counted as wrong)",
                 ["model", "image", "raw answer"], rows)


def _grid(study: StudyMeta, run: RunData, rows: list[_Row], ids: np.ndarray, fig_dir: Path) -> Grid | None:
    images = None
    for r in run.llms(study.name):
        arr = run.arrays(r.id, "sample_images")
        if arr is None:
            continue
        pos = {str(i): n for n, i in enumerate(arr["ids"])}
        if all(str(i) in pos for i in ids):
            images = arr["images"][[pos[str(i)] for i in ids]]
            break
    if images is None or not rows:
        return None
    classes = study.classes
    name = lambda c: "no answer" if c < 0 else classes[c]  # noqa: E731
    tiles = [Tile(str(iid), figures.thumbnail_png(images[j]), classes[rows[0].true[j]],
                  [(r.name, name(r.pred[j]), bool(r.pred[j] == r.true[j])) for r in rows]) for j, iid in enumerate(ids)]
    strip = figures.sample_grid(images, rows[0].true, classes, fig_dir / f"{study.name}_llm_sample.png",
                                per_class=max(1, int(np.bincount(rows[0].true).max())),
                                title="The LLM sample, one row per true class")
    return Grid("The LLM sample: each image with every model's answer", tiles,
                "Green: right; red: wrong or no answer. Images as sent to the LLMs, before any upscaling.", strip)


def llm_blocks(study: StudyMeta, run: RunData, fig_dir: Path, base: dict | None) -> tuple[list, list[Figure]]:
    """(blocks in report order, figures) of the LLM comparison of ``study``; empty without LLM experiments."""
    llms = run.llms(study.name)
    if not llms:
        return [], []
    blocks, figs = [], []
    skipped = [r for r in llms if r.status == "skipped"]
    for r in skipped:  # said once, here
        blocks.append(Paragraph(f"{r.label}: {r.reason}", strong="LLM not asked.", style="warn"))
    sample = next((r.sample for r in llms if r.sample and r.sample.get("ids")), None)
    if sample and any("sample" in r.metrics for r in llms):
        ids = np.array(sample["ids"], dtype=str)
        rows = _sample_rows(study, run, ids)
        if rows:
            table, extra = sample_table(study, rows, len(ids))
            blocks += [TableBlock(table), *(TableBlock(t) for t in extra)]
            grid = _grid(study, run, rows, ids, fig_dir)
            if grid is not None:
                blocks.append(grid)
    st = (base or {}).get("sample_table")
    if st:
        cols = st["columns"]
        order = [cols.index(c) for c in study.classes if c in cols]
        rep = [[m, *(Num(v[i], f"{v[i]:.0f}") for i in order), Num(v[-1], f"{v[-1]:.2f}")] for m, v in st["rows"].items()]
        blocks.append(TableBlock(Table(f"{study.name}_llm_reported",
                                       f"Reported on the paper's own 35 images ({st['source']}, % per class)",
                                       ["model", *study.classes, "overall %"], rep,
                                       "The paper's images are not published; its sample differs from ours.")))
    for t in (usage_table(study, run), unparsed_table(study, run)):
        if t is not None:
            blocks.append(TableBlock(t))
    for r in llms:
        m = r.metrics.get("sample")
        if m is not None:
            figs.append(Figure(f"Confusion matrix: {r.label} (LLM sample)", figures.confusion(
                np.array(m.confusion), study.classes, fig_dir / f"{r.id}_cm.png", f"{r.label} on the LLM sample",
                no_answer=m.confusion_no_answer), f"Counts on the {m.n} sampled images; each row sums to the images of "
                "that class, unanswered ones in their own column."))
    return blocks, figs
