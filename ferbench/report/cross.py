"""The cross-dataset matrix: each model (rows, by the dataset it was trained on) against each test set
(its study's own, then every ``split: {cross: ...}`` set), with accuracy, its 95 % Wilson CI and macro-F1."""
from __future__ import annotations

import numpy as np

from ..errors import FerbenchError
from ..metrics import accuracy_ci, f1
from ..schema.results import StudyMeta
from ..store import RunData, read_predictions
from .format import CI, DASH, Num
from .study import coverage_note, label_of, n_seeds
from .tables import Table


def cross_table(study: StudyMeta, run: RunData) -> Table | None:
    models = [r for r in run.models(study.name) if r.fold in (None, 0)]
    names = list(dict.fromkeys(n for r in models for n in r.cross))
    if not names:
        return None
    own = next(e.train_dataset for r in models for e in r.cross.values())
    seeds = n_seeds(models)
    headers, rows, notes = ["model", "trained on"], [], []
    for t in [f"{own} (own test)", *names]:
        headers += [f"{t} acc %", "95% CI", "macro F1"]
    for r in models:
        te = r.headline
        row = [label_of(r, seeds) + coverage_note(r), next((e.train_dataset for e in r.cross.values()), own)]
        row += [Num.pct(te.accuracy), CI.of(te.accuracy_ci), Num.of(te.macro_f1)] if te else [DASH] * 3
        for n in names:
            e = r.cross.get(n)
            got = _from_evidence(run, r, n, len(study.classes)) if e and e.metrics else None
            if e and e.metrics and (got is None or got[3] != e.metrics.n or abs(got[0] - e.metrics.accuracy) > 1e-9):
                notes.append(f"{label_of(r, seeds)} on {n}: not shown, its result.json and cross_predictions.csv "
                             "disagree or the file is missing")
                got = None
            row += [Num.pct(got[0]), CI.of(got[1]), Num.of(got[2])] if got else [DASH] * 3
            if e and e.left_out:
                notes.append(f"{label_of(r, seeds)} on {n}: scored on {len(e.classes)} shared classes, "
                             f"{e.left_out:,} of {e.images:,} images of {', '.join(e.left_out_classes)} left out")
        rows.append(row)
    note = ("Each model on its study's test set and on every further test set, on the classes the two share "
            "(a 7-class model is not scored on an 8-class set's contempt images). A dash: not scored there (a "
            "predictions file answers only the images it names). 95% CIs are Wilson intervals. "
            "Cross-dataset numbers are recomputed from cross_predictions.csv in each experiment's folder and "
            "shown only where result.json agrees with it."
            + ("" if not notes else " " + "; ".join(dict.fromkeys(notes)) + "."))
    return Table(f"{study.name}_cross", "Cross-dataset accuracy (train set x test set)", headers, rows, note)


def _from_evidence(run: RunData, r, name: str, k: int) -> tuple[float, tuple[float, float], float, int] | None:
    """(accuracy, Wilson CI, macro-F1, n) of ``r`` on test set ``name``, from its cross_predictions.csv."""
    try:
        preds = read_predictions(run.store.exp_dir(r.id) / "cross_predictions.csv")
    except (FerbenchError, OSError):
        return None
    rows = preds.rows(name)
    if len(rows) == 0:
        return None
    t, p = preds.true[rows], preds.predicted[rows]
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k:
        return None
    acc, lo, hi = accuracy_ci(t, p)
    return acc, (lo, hi), f1(t, p, num_classes=k, average="macro"), int(len(np.asarray(rows)))
