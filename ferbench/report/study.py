"""The model part of a study's report: every model result, trained or loaded, in every table and figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import figures
from ..schema.results import ModelResult, StudyMeta
from ..store import RunData
from .document import Figure, Paragraph
from .format import CI, DASH, Num, count_text, pct, run_label
from .tables import Table

DEGENERATE_SHARE = 0.9  # a model that predicts one class this often has learned a prior, not faces


def n_seeds(results) -> int:
    return len({r.seed for r in results})


def label_of(r, seeds: int) -> str:
    return run_label(r.label, r.fold, r.seed, seeds)


def reported_part(study: StudyMeta) -> str:
    """The partition a study reports: test, or val when its split has no test set."""
    return "test" if study.split_sizes.get("test") else "val"


def degenerate(r: ModelResult, classes: list[str]) -> str | None:
    """'predicts happy for 93% of test images' when one class takes at least 90 % of the predictions."""
    cm = np.array(r.headline.confusion)[:, :len(classes)]
    share = cm.sum(0) / max(cm.sum(), 1)
    j = int(share.argmax())
    if share[j] >= DEGENERATE_SHARE:
        return f"degenerate: predicts {classes[j]} for {share[j]:.0%} of {r.headline_split} images"
    return None


def coverage_note(r) -> str:
    """' (predictions: 2 of 28 test images)' for a model scored on fewer images than the partition holds."""
    cov = r.load.coverage if r.kind == "load" and r.load is not None else {}
    part = r.headline_split or "test"
    if part not in cov or cov[part][0] == cov[part][1]:
        return ""
    return f" (predictions: {cov[part][0]:,} of {cov[part][1]:,} {part} images)"


def flops_text(flops: int | None) -> str:
    """' / 0.56 GFLOPs' (one forward pass on one image), or nothing where not counted."""
    return f" / {flops / 1e9:.2g} GFLOPs" if flops else ""


def tta_note(r) -> str:
    """' (TTA tencrop)' for a model scored with test-time augmentation."""
    return f" (TTA {r.tta})" if getattr(r, "tta", "none") != "none" else ""


def _accuracy_row(name: str, r: ModelResult, part: str, study: StudyMeta) -> list:
    te, va = r.headline, r.metrics.get("val") if part == "test" else None
    t = r.timing
    return [name, Num.pct(te.accuracy), CI.of(te.accuracy_ci), Num.of(te.macro_f1), Num.of(te.weighted_f1),
            Num.pct(te.top2_accuracy, 1), Num.pct(va.accuracy if va else None),
            Num(r.parameters.total, count_text(r.parameters.total) + flops_text(r.parameters.flops))
            if r.parameters and r.parameters.total else Num(None, DASH),
            Num.of(t.seconds_per_epoch, "{:.1f}"), Num.of(t.train_seconds, "{:.0f}"),
            Num.of(t.inference.ms_per_image if t.inference else None, "{:.3f}"),
            Num(r.training.reported_epoch, str(r.training.reported_epoch)) if r.training and
            r.training.reported_epoch else Num(None, DASH),
            degenerate(r, study.classes) or ""]


def accuracy_table(study: StudyMeta, run: RunData) -> Table | None:
    """Table-1 style: every model experiment of the study, failed ones included, each flagged if degenerate."""
    results = [r for r in run.of_study(study.name) if r.is_model]
    if not results:
        return None
    seeds = n_seeds(results)
    part = reported_part(study)
    rows = []
    for r in results:
        name = label_of(r, seeds) + (" (loaded)" if r.kind == "load" else "") + coverage_note(r)
        if not r.ok:
            rows.append([name, r.status.upper(), *[DASH] * 10, (r.error or r.reason or "").splitlines()[0][:120]])
            continue
        rows.append(_accuracy_row(name + tta_note(r), r, part, study))
        if part in r.single_view:  # the same model without test-time augmentation, side by side
            m = r.single_view[part]
            rows.append([name + " (single view)", Num.pct(m.accuracy), CI.of(m.accuracy_ci), Num.of(m.macro_f1),
                         Num.of(m.weighted_f1), Num.pct(m.top2_accuracy, 1), *[Num(None, DASH)] * 6,
                         "same model, no test-time augmentation"])
    return Table(f"{study.name}_accuracy", f"{'Test' if part == 'test' else 'Validation'} accuracy",
                 ["model", f"{part} acc %", "95% CI (Wilson)", "macro F1", "weighted F1", "top-2 %", "val acc %",
                  "params", "s/epoch", "train s", "ms/image", "epoch reported", "flags"], rows,
                 "The epoch reported is the one whose weights were evaluated (best validation epoch when "
                 "restored, else the last). A model flagged degenerate predicts one class for most images. "
                 "(TTA tencrop) / (TTA flip): probabilities averaged over ten crops or the image and its mirror; "
                 "the (single view) row below it is the same model scored on the image alone. GFLOPs: one forward "
                 "pass on one image, as torch's FlopCounterMode counts them.",
                 paper_columns=[0, 1, 2, 3, 7], note_column=12)


def per_class_table(study: StudyMeta, run: RunData) -> Table | None:
    ok = run.models(study.name)
    if not ok:
        return None
    seeds = n_seeds(ok)
    part = reported_part(study)
    rows = [[label_of(r, seeds), *(Num.of(v, "{:.2f}") for v in r.headline.per_class.f1),
             Num.of(r.headline.macro_f1), Num.of(r.headline.weighted_f1)] for r in ok]
    support = ok[0].headline.per_class.support
    return Table(f"{study.name}_f1", f"Per-class F1 on {part}", ["model", *study.classes, "macro", "weighted"], rows,
                 f"{part.capitalize()} images per class: " + ", ".join(f"{c} {n}" for c, n in zip(study.classes, support))
                 + ".")


def cv_table(study: StudyMeta, run: RunData) -> Table | None:
    folds = [r for r in run.models(study.name) if r.fold is not None and "val" in r.metrics]
    if not folds:
        return None
    by: dict[str, list[float]] = {}
    for r in folds:
        by.setdefault(r.label, []).append(r.metrics["val"].accuracy)
    return Table(f"{study.name}_cv", "Cross-validation (val accuracy over folds)", ["model", "folds", "mean %", "sd %"],
                 [[k, Num(len(v), str(len(v))), Num.pct(float(np.mean(v))),
                   Num.pct(float(np.std(v, ddof=1)) if len(v) > 1 else None)] for k, v in by.items()])


def seeds_table(study: StudyMeta, run: RunData) -> Table | None:
    by: dict[str, list[float]] = {}
    for r in run.models(study.name):
        if r.fold is None:
            by.setdefault(r.label, []).append(r.headline.accuracy)
    if not any(len(v) > 1 for v in by.values()):
        return None
    return Table(f"{study.name}_seeds", f"Across training seeds ({reported_part(study)} accuracy)",
                 ["model", "seeds", "mean %", "sd %", "min %", "max %"],
                 [[k, Num(len(v), str(len(v))), Num.pct(float(np.mean(v))),
                   Num.pct(float(np.std(v, ddof=1)) if len(v) > 1 else None), Num.pct(min(v)), Num.pct(max(v))]
                  for k, v in by.items()],
                 "The spread across seeds is training noise that a single-run comparison hides.")


def top_confusion(cm: np.ndarray, classes: list[str]) -> str:
    """The most frequent confusion between two classes, for a caption ('no answer' columns are not classes)."""
    off = np.array(cm)[:, :len(classes)].copy()
    np.fill_diagonal(off, 0)
    if off.max() <= 0:
        return "no image taken for another class"
    i, j = np.unravel_index(off.argmax(), off.shape)
    n = int(off[i, j])
    return f"most frequent error: {classes[i]} taken for {classes[j]} ({n:,} image{'' if n == 1 else 's'})"


def model_figures(study: StudyMeta, run: RunData, fig_dir: Path) -> tuple[list[Figure], list[Paragraph]]:
    """Curves, confusion matrices, P/R/F1 bars and Grad-CAM for every model; why Grad-CAM is absent."""
    ok = run.models(study.name)
    seeds = n_seeds(ok)
    figs, notes = [], []
    trained = [r for r in ok if r.history]
    if trained:
        epochs = [f"{label_of(r, seeds)} {r.training.reported_epoch}" for r in trained
                  if r.training and r.training.reported_epoch]
        figs.append(Figure("Training and validation curves", figures.curves(
            {label_of(r, seeds): [h.model_dump() for h in r.history] for r in trained},
            fig_dir / f"{study.name}_curves.png", study.title or study.name),
            "Per epoch; solid lines training, dashed lines validation."
            + (f" Weights evaluated from epoch: {', '.join(epochs)}." if epochs else "")))
    for r in ok:
        name = label_of(r, seeds)
        te, part = r.headline, r.headline_split  # val for a study without a test set
        f1 = te.per_class.f1
        worst = int(np.argmin(f1))
        figs.append(Figure(f"Confusion matrix: {name}", figures.confusion(
            np.array(te.confusion), study.classes, fig_dir / f"{r.id}_cm.png", f"{name} ({part})",
            no_answer=te.confusion_no_answer),
            f"{te.n:,} {part} images; colour is the share of the true class (row); "
            f"{top_confusion(te.confusion, study.classes)}."))
        figs.append(Figure(f"Per-class precision / recall / F1: {name}", figures.prf_bars(
            te.per_class.model_dump(), study.classes, fig_dir / f"{r.id}_prf.png", f"{name} ({part})"),
            f"Accuracy {pct(te.accuracy)} %, macro F1 {te.macro_f1:.3f}; weakest class {study.classes[worst]} "
            f"(F1 {f1[worst]:.2f}). Under each class its number of {part} images."))
        gc = run.root / r.id / "gradcam.png"
        if r.gradcam and r.gradcam.available and gc.exists():
            figs.append(Figure(f"Grad-CAM: {name}", gc,
                               f"The first {part} image of each class above its Grad-CAM map: where the last "
                               "convolution found evidence for the predicted class. Each map is scaled to its own "
                               "maximum, so compare where, not how strongly. Caption: true → predicted class."))
        elif r.gradcam and r.gradcam.reason:
            notes.append(Paragraph(f"No Grad-CAM for {name}: {r.gradcam.reason}.", style="small"))
    return figs, notes


def export_tables(study: StudyMeta, run: RunData) -> list[Table]:
    """Per model: per-class precision / recall / F1 and the confusion matrix, as tables for a paper
    (CSV and LaTeX only; the report shows them as figures)."""
    ok = run.models(study.name)
    seeds = n_seeds(ok)
    out = []
    for r in ok:
        name, m, part = label_of(r, seeds), r.headline, r.headline_split
        pc = m.per_class
        out.append(Table(f"{r.id}_per_class", f"Per-class precision, recall and F1 of {name} ({part})",
                         ["class", "precision", "recall", "F1", "images"],
                         [[c, Num.of(p), Num.of(rc), Num.of(f), Num(n, f"{n:,}")]
                          for c, p, rc, f, n in zip(study.classes, pc.precision, pc.recall, pc.f1, pc.support)]
                         + [["macro", Num.of(m.macro_precision), Num.of(m.macro_recall), Num.of(m.macro_f1),
                             Num(m.n, f"{m.n:,}")]]))
        cm = np.array(m.confusion)
        cols = list(study.classes) + (["no answer"] if m.confusion_no_answer else [])
        out.append(Table(f"{r.id}_confusion", f"Confusion matrix of {name} ({part} images; rows true, "
                         "columns predicted)", ["true \\ predicted", *cols],
                         [[c, *(Num(int(v), f"{int(v):,}") for v in cm[i, :len(cols)])]
                          for i, c in enumerate(study.classes)]))
    return out
