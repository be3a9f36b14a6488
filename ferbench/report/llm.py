"""The LLM part of a study's report: every model and every LLM on the identical sample (the paper's
Table 2 layout), Wilson CIs, exact McNemar tests, what each sample size can detect, usage and cost,
unparsed answers, and the sample itself as a grid of tiles."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import figures
from ..llm.compare import pairwise_mcnemar
from ..metrics import accuracy_ci, mcnemar_exact, min_detectable_difference
from ..schema.baselines import Baselines
from ..schema.results import StudyMeta
from ..store import RunData
from .document import Figure, Grid, Paragraph, TableBlock, Tile
from .format import CI, DASH, Num
from .llm_outcomes import outcome_table, strategy_table
from .study import label_of, n_seeds, top_confusion
from .tables import Table


@dataclass
class _Row:
    name: str
    true: np.ndarray
    pred: np.ndarray  # -1: no answer (unparsed, failed, truncated)
    is_llm: bool
    covered: np.ndarray | None = None  # a predictions file: which sample images it answers (None: all)

    def scored(self) -> tuple[np.ndarray, np.ndarray]:
        """(true, predicted) on the images this row is scored on."""
        return (self.true, self.pred) if self.covered is None else (self.true[self.covered], self.pred[self.covered])


def _sample_rows(study: StudyMeta, run: RunData, ids: np.ndarray, llms) -> list[_Row]:
    """Every model (trained or loaded; first fold of a CV study) and the given LLMs, on the sample images."""
    rows = []
    models = [r for r in run.models(study.name) if r.fold in (None, 0)]
    seeds = n_seeds(models)
    for r, is_llm in [(m, False) for m in models] + [(m, True) for m in llms]:
        p = run.predictions(r.id)
        if p is None:
            continue
        sel_rows = np.arange(len(p.ids)) if is_llm else p.rows(r.headline_split or "test")
        pos = {i: n for n, i in zip(sel_rows, p.ids[sel_rows])}
        covered = np.array([i in pos for i in ids], dtype=bool)
        partial = not is_llm and r.kind == "load" and r.load is not None and r.load.format == "predictions"
        if not covered.all() and not (partial and covered.any()):
            continue
        sel = np.array([pos.get(i, 0) for i in ids])
        pred = np.where(covered, p.predicted[sel], -1)
        name = f"{r.label} (LLM)" if is_llm else label_of(r, seeds)
        if not covered.all():  # a published model answers only some images: scored on those, and says so
            name += f" (loaded) (predictions: {int(covered.sum()):,} of {len(ids):,} sample images)"
        rows.append(_Row(name, p.true[sel], pred, is_llm, None if covered.all() else covered))
    return rows


def _per_class_cells(t: np.ndarray, pr: np.ndarray, k: int) -> list[Num]:
    out = []
    for c in range(k):
        m = t == c
        out.append(Num.count(int((pr[m] == c).sum()), int(m.sum())) if m.any() else Num(None, DASH))
    return out


def sample_table(study: StudyMeta, rows: list[_Row], ids: np.ndarray, key: str) -> tuple[Table, list[Table]]:
    """The paper's Table 2 layout for every row on one sample, and the LLMs compared pairwise."""
    k, n = len(study.classes), len(ids)
    trained = [r for r in rows if not r.is_llm and r.covered is None]
    best = max(trained, key=lambda r: (r.true == r.pred).mean()) if trained else None
    body = []
    for r in rows:
        t, pr = r.scored()
        acc, lo, hi = accuracy_ci(t, np.where(pr < 0, k, pr))
        p_val = Num(None, DASH)
        if best is not None and r is not best:  # on the images both answer
            on = r.covered if r.covered is not None else np.ones(n, dtype=bool)
            p_val = Num.p(mcnemar_exact(t, np.where(best.pred[on] < 0, k, best.pred[on]),
                                        np.where(pr < 0, k, pr))["p_value"])
        d = min_detectable_difference(len(t), acc)
        body.append([r.name, *_per_class_cells(t, pr, k), Num.pct(acc), CI.of((lo, hi)), p_val,
                     Num(None, DASH) if d is None else Num(100 * d, f"{100 * d:.1f}")])
    per = n // k if n % k == 0 else None
    note = (f"Identical sample of {n:,} images ({f'{per} per class' if per else 'stratified'}); cells count correct "
            f"answers per class (no answer counts as wrong). 95% CIs are Wilson intervals; p is the exact McNemar "
            f"test against the best trained model on this sample{f' ({best.name})' if best else ''}. The smallest "
            f"detectable gap is the accuracy difference {n:,} images detect with two-sided α = 0.05 and 80% power "
            f"(paired McNemar detects somewhat smaller gaps when models agree often); one image moves accuracy by "
            f"{100 / n:.2f} points." + (" A predictions file is scored on the sample images it answers (its "
                                        "coverage beside its name), its McNemar test on those images."
                                        if any(r.covered is not None for r in rows) else ""))
    table = Table(key, "Per-class results on the LLM sample (Table 2 layout)",
                  ["model", *study.classes, "overall %", "95% CI", f"McNemar p vs {best.name if best else DASH}",
                   "smallest detectable gap (pts)"], body, note)
    llms = [r.name for r in rows if r.is_llm]
    pairs = pairwise_mcnemar({r.name: (ids, r.true, r.pred) for r in rows}, llms, None)
    extra = []
    if pairs:
        extra.append(Table(f"{key}_pairs", "LLM against LLM on the same images (exact McNemar)",
                           ["LLM A", "LLM B", "images", "A right, B wrong", "B right, A wrong", "p"],
                           [[q["a"], q["b"], Num(q["n"], f"{q['n']:,}"), Num(q["b_only_a_right"], str(q["b_only_a_right"])),
                             Num(q["c_only_b_right"], str(q["c_only_b_right"])), Num.p(q["p_value"])] for q in pairs]))
    return table, extra


def usage_table(study: StudyMeta, run: RunData) -> Table | None:
    ran = [r for r in run.llms(study.name) if r.status != "skipped"]
    if not ran:
        return None
    rows = []
    for r in ran:
        u = r.usage
        cost = u.estimated_cost_usd
        rows.append([r.label, r.status, *(Num(v, str(v)) for v in
                                           (u.requests_sent, u.cache_hits, u.prompt_tokens, u.completion_tokens)),
                     Num(cost, _local_cost(r) if cost is None else f"${cost:.4f}"),
                     "; ".join(a.description for a in r.adaptations),
                     "; ".join(filter(None, [r.error or "", *(r.sample.notes if r.sample else [])]))])
    return Table(f"{study.name}_llm_usage", "LLM endpoints: requests, tokens, cost",
                 ["endpoint", "status", "requests", "cache hits", "prompt tok", "completion tok", "est. cost",
                  "adaptations", "note"], rows)


def _local_cost(r) -> str:
    """A local server costs no money; its requests' wall time is the cost that is shown instead."""
    t = r.throughput
    if r.server is None:
        return DASH
    return "$0 (local" + (f": {t.images:,} images in {t.query_seconds:.1f} s)" if t is not None else ")")


def unparsed_table(study: StudyMeta, run: RunData) -> Table | None:
    rows = [[r.label, u.id, u.outcome, u.raw[:200]] for r in run.llms(study.name) for u in r.unparsed]
    if not rows:
        return None
    return Table(f"{study.name}_llm_unparsed", "LLM answers naming no class: unparsed, refused, blocked (counted as wrong)",
                 ["model", "image", "outcome", "raw answer"], rows)


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
                  [(r.name, name(r.pred[j]) if r.covered is None or r.covered[j] else "not in its file",
                    bool(r.pred[j] == r.true[j])) for r in rows]) for j, iid in enumerate(ids)]
    # the Markdown report's picture of the sample: numbered like the rows of its table
    strip = figures.sample_grid(images, rows[0].true, classes, fig_dir / f"{study.name}_llm_sample.png",
                                per_class=max(1, int(np.bincount(rows[0].true).max())),
                                captions=[f"#{j + 1}" for j in range(len(ids))],
                                title="The LLM sample, one row per true class (numbers as in the table)")
    return Grid("The LLM sample: each image with every model's answer", tiles,
                f"The {len(ids)} images as sent to the LLMs, before any upscaling.", strip)


def _sample_groups(llms) -> dict[tuple, list]:
    """LLMs may score different samples (the paper's 35 images, or a whole test set by batch): grouped by sample."""
    groups: dict[tuple, list] = {}
    for r in llms:
        if "sample" in r.metrics and r.sample and r.sample.ids:
            groups.setdefault(tuple(r.sample.ids), []).append(r)
    return groups


@dataclass
class LLMVersusNetwork:
    llm: str
    llm_accuracy: float
    network: str
    network_accuracy: float
    p_value: float  # exact McNemar, LLM vs the network on the same images
    images: int


def llm_vs_best_network(study: StudyMeta, run: RunData) -> list[LLMVersusNetwork]:
    """Each LLM scored in ``study`` against the best trained or loaded network on the same images."""
    out = []
    k = len(study.classes)
    for sample_ids, members in _sample_groups(run.llms(study.name)).items():
        ids = np.array(sample_ids, dtype=str)
        rows = _sample_rows(study, run, ids, members)
        nets = [r for r in rows if not r.is_llm and r.covered is None]  # compared on the whole sample
        if not nets:
            continue
        best = max(nets, key=lambda r: (r.true == r.pred).mean())
        for r in rows:
            if r.is_llm:
                p = mcnemar_exact(r.true, np.where(best.pred < 0, k, best.pred), np.where(r.pred < 0, k, r.pred))
                out.append(LLMVersusNetwork(r.name, float((r.true == r.pred).mean()), best.name,
                                            float((best.true == best.pred).mean()), p["p_value"], len(ids)))
    return out


def llm_blocks(study: StudyMeta, run: RunData, fig_dir: Path, base: Baselines | None) -> tuple[list, list[Figure]]:
    """(blocks in report order, figures) of the LLM comparison of ``study``; empty without LLM experiments."""
    llms = run.llms(study.name)
    if not llms:
        return [], []
    blocks, figs = [], []
    skipped = [r for r in llms if r.status == "skipped"]
    for r in skipped:  # said once, here
        blocks.append(Paragraph(f"{r.label}: {r.reason}", strong="LLM not asked.", style="warn"))
    for g, (sample_ids, members) in enumerate(_sample_groups(llms).items()):
        ids = np.array(sample_ids, dtype=str)
        rows = _sample_rows(study, run, ids, members)
        if not rows:
            continue
        table, extra = sample_table(study, rows, ids, f"{study.name}_llm_sample" + (f"_{g + 1}" if g else ""))
        blocks += [TableBlock(table), *(TableBlock(t) for t in extra)]
        grid = _grid(study, run, rows, ids, fig_dir) if len(ids) <= 100 else None
        if grid is not None:
            blocks.append(grid)
    st = base.sample_table if base else None
    if st:
        cols = st.columns
        order = [cols.index(c) for c in study.classes if c in cols]
        rep = [[m, *(Num(v[i], f"{v[i]:.0f}") for i in order), Num(v[-1], f"{v[-1]:.2f}")] for m, v in st.rows.items()]
        blocks.append(TableBlock(Table(f"{study.name}_llm_reported",
                                       f"Reported on the paper's own 35 images ({st.source}, % per class)",
                                       ["model", *study.classes, "overall %"], rep,
                                       "The paper's images are not published; its sample differs from ours.")))
    for t in (outcome_table(study, run), strategy_table(study, run), usage_table(study, run),
              unparsed_table(study, run)):
        if t is not None:
            blocks.append(TableBlock(t))
    for r in llms:
        m = r.metrics.get("sample")
        if m is not None:
            figs.append(Figure(f"Confusion matrix: {r.label} (LLM sample)", figures.confusion(
                np.array(m.confusion), study.classes, fig_dir / f"{r.id}_cm.png", f"{r.label} on the LLM sample",
                no_answer=m.confusion_no_answer),
                f"{m.n} sampled images; each row sums to the images of that class"
                + (f", answers naming no class in the last column ({np.array(m.confusion)[:, -1].sum()} here)"
                   if m.confusion_no_answer else "") + f"; {top_confusion(m.confusion, study.classes)}."))
    return blocks, figs
