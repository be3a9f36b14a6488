"""``kind: clip``: a CLIP-style model scored zero-shot or by a linear probe on its frozen features, in the same
tables, CIs and McNemar tests as every other model (``model: {clip: PATH, mode: ...}`` in a suite)."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import DataError
from ..metrics import summarize
from ..schema.experiment import CLIPExperiment
from .context import Context, ExperimentKind, Outcome


def _prompts(exp: CLIPExperiment, classes: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    from ..clip.model import default_prompts

    templates, names = default_prompts()
    names.update(exp.clip.classnames or {})
    missing = [c for c in classes if c not in names]
    if missing:
        raise DataError(f"classnames gives no words for {', '.join(missing)}")
    return exp.clip.templates or templates, {c: names[c] for c in classes}


def _features(clip, split, device, batch_size: int, parts: list[str]) -> dict[str, np.ndarray]:
    from ..clip.model import image_features

    return {p: image_features(clip, getattr(split, p).images, device, batch_size) for p in parts
            if getattr(split, p) is not None and len(getattr(split, p))}


def _probe(exp: CLIPExperiment, feats: dict, split) -> tuple[dict, dict]:
    from ..clip.model import linear_probe

    if "val" not in feats and len(exp.clip.C) > 1:
        raise DataError("a linear probe chooses C on the validation split, and this split has none; give one C")
    if len(set(split.train.labels.tolist())) < len(split.classes):
        raise DataError("the linear probe's training split lacks a class; it cannot output every class")
    c, clf, by_c = linear_probe(feats["train"], split.train.labels, feats.get("val"),
                                split.val.labels if "val" in feats else None, exp.clip.C, exp.seed)
    proba = {p: clf.predict_proba(f) for p, f in feats.items() if p != "train"}
    return proba, {"C": c, "val_accuracy_by_C": {f"{k:g}": v for k, v in by_c.items() if v == v}}


def run_clip(exp: CLIPExperiment, ctx: Context) -> Outcome:
    from ..clip.model import load_clip, softmax, zero_shot_weights

    t0, split, device = time.perf_counter(), ctx.split, ctx.device
    clip = load_clip(exp.clip, device)
    probe = exp.clip.mode == "linear_probe"
    t1 = time.perf_counter()
    feats = _features(clip, split, device, exp.clip.batch_size, ["train", "val", "test"] if probe else ["val", "test"])
    info = {"mode": exp.clip.mode, "weights": clip.weights, "arch": clip.arch, "image_size": clip.image_size,
            "feature_seconds": time.perf_counter() - t1, "images_featurized": sum(map(len, feats.values())),
            "device": str(device)}
    if probe:
        proba, chosen = _probe(exp, feats, split)
        info.update(chosen)
    else:
        templates, names = _prompts(exp, split.classes)
        w = zero_shot_weights(clip, [names[c] for c in split.classes], templates, device)
        proba = {p: softmax(100.0 * f @ w.T) for p, f in feats.items()}
        info.update(templates=templates, classnames=names)
    metrics, rows = {}, []
    for part_name in ("val", "test"):
        if part_name not in proba:
            continue
        part, pr = getattr(split, part_name), proba[part_name]
        pred = pr.argmax(1)
        metrics[part_name] = summarize(part.labels, pred, pr, num_classes=len(split.classes))
        rows += [[i, part_name, int(t), int(p), *(f"{q:.5f}" for q in r)]
                 for i, t, p, r in zip(part.ids, part.labels, pred, pr)]
    header = ["id", "split", "true", "predicted", *(f"p_{c}" for c in split.classes)]
    n_params = sum(p.numel() for p in clip.model.parameters())
    what = "zero-shot" if not probe else f"linear probe (C={info['C']:g})"
    fields = {"metrics": metrics, "model": clip.arch, "history": [], "clip": info,
              "input": f"{clip.image_size}x{clip.image_size} RGB (grey replicated), open_clip preprocessing",
              "parameters": {"total": n_params, "trainable": 0, "counted_from": "module parameters"},
              "gradcam": {"available": False, "reason": "not computed for CLIP models"},
              "timing": {"evaluation_seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()},
              "model_info": {"name": exp.label, "study": "user", "paper": f"CLIP {what}",
                             "input": f"{clip.image_size} px RGB", "notes": f"weights {clip.weights}"}}
    return Outcome(fields, predictions=(header, rows))


CLIP = ExperimentKind("clip", run_clip)
