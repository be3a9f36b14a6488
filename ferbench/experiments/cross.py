"""A model scored on further datasets' test sets (cross-dataset), on the classes it shares with each."""
from __future__ import annotations

import csv
import io

import torch

from ..csvsafe import safe_row
from ..data.cross import shared_rows
from ..data.splits import SplitData
from ..engine import predict_proba
from ..metrics import summarize


def score_cross(model, split: SplitData, device: torch.device, batch_size: int, amp: torch.dtype | None = None
                ) -> tuple[dict, bytes | None]:
    """({name: cross entry}, cross_predictions.csv) of ``model`` on every further test set of ``split``.

    A 7-class model on an 8-class set is scored on the 7 classes they share; the images of the other
    classes are left out and counted (``left_out``), never scored as errors of a class the model lacks.
    """
    if not split.cross:
        return {}, None
    k, out, rows = len(split.classes), {}, []
    for name, test in split.cross.items():
        idx, labels, shared = shared_rows(tuple(split.classes), test)
        entry = {"dataset": test.dataset, "train_dataset": split.train.dataset, "classes": list(shared),
                 "images": len(test), "left_out": int(len(test) - len(idx)),
                 "left_out_classes": [c for c in test.classes if c not in shared], "metrics": None}
        if len(idx):
            proba = predict_proba(model, test.images[idx], device, batch_size, amp)
            pred = proba.argmax(1)
            entry["metrics"] = summarize(labels, pred, proba, num_classes=k)
            rows += [[test.ids[i], name, int(t), int(p)] for i, t, p in zip(idx, labels, pred)]
        out[name] = entry
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "split", "true", "predicted"])  # split: the test set's name; ferbench's predictions layout
    w.writerows(safe_row(r) for r in rows)
    return out, buf.getvalue().encode()
