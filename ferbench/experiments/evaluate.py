"""Scoring a model, trained or loaded, the same way: val and test metrics, predictions, Grad-CAM."""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import figures
from ..data.splits import SplitData
from ..engine import measure_inference, predict_proba, prepare_model
from ..gradcam import gradcam
from ..metrics import summarize
from ..schema.train import TrainConfig
from ..predictions import SINGLE_VIEW
from .cross import score_cross


def _rows(part, name: str, pred, proba) -> list[list]:
    return [[i, name, int(t), int(p), *(f"{q:.5f}" for q in pr)] for i, t, p, pr in zip(part.ids, part.labels, pred, proba)]


def evaluate_model(model, split: SplitData, device: torch.device, cfg: TrainConfig, label: str,
                   gradcam_reason: str | None = None, amp: torch.dtype | None = None,
                   ) -> tuple[dict, tuple[list[str], list[list]], dict[str, bytes]]:
    """(result fields, predictions (header, rows), figure files) of ``model`` on the split's val and test,
    under ``amp`` autocast (the dtype the model was trained in; None: fp32)."""
    t0 = time.perf_counter()
    k = len(split.classes)
    # Trained, reloaded and user models all run in the same memory format: identical weights give
    # identical predictions.
    prepare_model(model, cfg.model_copy(update={"input_size": None}), device)
    metrics, rows, preds = {}, [], {}
    single, tta = {}, dict(tta=cfg.tta, tta_crop=cfg.tta_crop, tta_mean=cfg.tta_mean)
    for part_name, part in (("val", split.val), ("test", split.test)):
        if part is None or len(part) == 0:
            continue
        proba = predict_proba(model, part.images, device, cfg.eval_batch_size, amp, **tta)
        pred = preds[part_name] = proba.argmax(1)
        metrics[part_name] = summarize(part.labels, pred, proba, num_classes=k)
        rows += _rows(part, part_name, pred, proba)
        if cfg.tta != "none":  # the same model scored on the image alone, side by side
            plain = predict_proba(model, part.images, device, cfg.eval_batch_size, amp)
            single[part_name] = summarize(part.labels, plain.argmax(1), plain, num_classes=k)
            rows += _rows(part, part_name + SINGLE_VIEW, plain.argmax(1), plain)
    header = ["id", "split", "true", "predicted", *(f"p_{c}" for c in split.classes)]
    evaluation_seconds = time.perf_counter() - t0
    files, gc = {}, {"available": False, "reason": gradcam_reason}
    te = split.test if split.test is not None else split.val  # no test set: the reported val partition
    if gradcam_reason is None:
        # Grad-CAM on the first test image of every class; captions reuse the test predictions.
        idx = np.concatenate([np.flatnonzero(te.labels == c)[:1] for c in range(k)]).astype(int)
        shown = preds["test" if split.test is not None else "val"][idx]
        cams = gradcam(model, te.images[idx], device, classes=shown) if len(idx) else None
        if cams is None:
            gc["reason"] = "the model has no convolution"
        else:
            files["gradcam.png"] = figures.gradcam_grid(te.images[idx], cams, te.labels[idx], shown,
                                                        split.classes, None, f"Grad-CAM: {label}")
            gc = {"available": True, "reason": None}
    cross, cross_csv = score_cross(model, split, device, cfg.eval_batch_size, amp)
    if cross_csv is not None:
        files["cross_predictions.csv"] = cross_csv
    fields = {
        "metrics": metrics, "tta": cfg.tta, "single_view": single, "input": model.spec.describe(), "gradcam": gc,
        "cross": cross,
        "timing": {"inference": measure_inference(model, device, batch_size=64, amp=amp,
                                                  image_shape=te.images.shape[1:]),
                   "evaluation_seconds": evaluation_seconds, "torch_threads": torch.get_num_threads()},
    }
    return fields, (header, rows), files
