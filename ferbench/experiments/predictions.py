"""``model: {predictions: FILE.csv}``: a model that can no longer be queried, scored from its published
per-image answers (e.g. GPT-4V's on RAF-DB) in the same tables, CIs and McNemar tests as every other model.

The file: a header with ``id`` and ``predicted`` (a class name in any common spelling, contempt kept
apart), optionally ``p_<class>`` probabilities for every study class. Ids match the study's image ids,
or their file names (``test_0001.jpg``, ``test_0001_aligned.jpg`` match ``test_0001``). The model is
scored on the images the file covers; the coverage is recorded per partition and shown with its name.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path, PurePosixPath

import numpy as np

from ..data.datasets._common import open_text
from ..errors import DataError
from ..metrics import summarize
from ..schema.experiment import LoadExperiment
from ..vocabulary import vocab_class
from .context import Context, Outcome


def _key(ident: str) -> str:
    """An image id as the study names it: the file name without folders, extension or RAF-DB's _aligned."""
    stem = PurePosixPath(ident.strip().replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return stem.removesuffix("_aligned")


def read_predictions_file(path: Path, classes: tuple[str, ...]) -> dict[str, tuple[int, list[float] | None]]:
    """{id: (class index, probabilities or None)}; one-line DataError naming the file and line otherwise."""
    with open_text(path, "predictions file") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if "id" not in header or "predicted" not in header:
            raise DataError(f"{path}: a predictions file needs columns 'id' and 'predicted'; got "
                            f"{','.join(header)[:200]!r}")
        ii, pi = header.index("id"), header.index("predicted")
        prob_cols = [header.index(f"p_{c}") for c in classes] if all(f"p_{c}" in header for c in classes) else None
        out: dict[str, tuple[int, list[float] | None]] = {}
        no = 1
        try:
            for no, row in enumerate(reader, start=2):
                if not row:
                    continue
                out_key, entry = _row(row, ii, pi, prob_cols, classes, f"{path} line {no}")
                if out_key in out:
                    raise DataError(f"{path} line {no}: image {out_key[:80]!r} is answered twice")
                out[out_key] = entry
        except csv.Error as exc:
            raise DataError(f"{path} line {no + 1}: not a CSV row ({exc})") from None
    return out


def _row(row, ii, pi, prob_cols, classes, where):
    try:
        ident, name = row[ii], row[pi]
        probs = [float(row[c]) for c in prob_cols] if prob_cols else None
    except (IndexError, ValueError):
        raise DataError(f"{where}: missing id/predicted or a probability that is not a number") from None
    cls = vocab_class(name)
    if cls is None or cls not in classes:
        raise DataError(f"{where}: predicted {name[:40]!r} is not one of the study's classes ({', '.join(classes)})")
    if probs is not None and not all(np.isfinite(probs)):
        raise DataError(f"{where}: probabilities must be finite numbers")
    return _key(ident), (classes.index(cls), probs)


def run_predictions(exp: LoadExperiment, ctx: Context) -> Outcome:
    t0 = time.perf_counter()
    split, path = ctx.split, Path(exp.user_model.predictions)
    answers = read_predictions_file(path, split.classes)
    has_p = next(iter(answers.values()), (0, None))[1] is not None
    metrics, rows, coverage = {}, [], {}
    for part_name, part in (("val", split.val), ("test", split.test)):
        if part is None or len(part) == 0:
            continue
        keys = [_key(str(i)) for i in part.ids]
        idx = [n for n, k in enumerate(keys) if k in answers]
        coverage[part_name] = (len(idx), len(part))
        if not idx:
            continue
        pred = np.array([answers[keys[n]][0] for n in idx])
        proba = np.array([answers[keys[n]][1] for n in idx], dtype=np.float64) if has_p else None
        metrics[part_name] = summarize(part.labels[idx], pred, proba, num_classes=len(split.classes))
        rows += [[part.ids[n], part_name, int(part.labels[n]), int(p), *(f"{q:.5f}" for q in (pr if has_p else ()))]
                 for n, p, pr in zip(idx, pred, proba if has_p else [None] * len(idx))]
    if "test" not in metrics and split.test is not None:
        raise DataError(f"{path} answers none of the study's {len(split.test):,} test images (ids such as "
                        f"{str(split.test.ids[0])!r}); its ids must be the dataset's image ids or file names")
    header = ["id", "split", "true", "predicted", *((f"p_{c}" for c in split.classes) if has_p else ())]
    notes = [f"{part}: scored on the {c:,} of {n:,} images the file answers" for part, (c, n) in coverage.items()]
    fields = {"metrics": metrics, "model": None, "history": [], "input": "published per-image answers",
              "gradcam": {"available": False, "reason": "a predictions file has no network to explain"},
              "timing": {"evaluation_seconds": time.perf_counter() - t0},
              "load": {"file": str(path), "format": "predictions", "outputs": "probabilities" if has_p else "labels",
                       "outputs_detected": False, "notes": notes, "coverage": coverage},
              "model_info": {"name": exp.label, "study": "user", "paper": "published predictions",
                             "input": "published per-image answers", "notes": "; ".join(notes)}}
    return Outcome(fields, predictions=(header, rows))
