"""``kind: load``: evaluate a user's model file (or a saved checkpoint) exactly as trained models are."""
from __future__ import annotations

import torch

from ..models.loading import load_user_model, runs_on_cpu_only
from ..schema.experiment import LoadExperiment
from .context import Context, Outcome
from .evaluate import evaluate_model


def run_load(exp: LoadExperiment, ctx: Context) -> Outcome:
    if exp.user_model.predictions:
        from .predictions import run_predictions

        return run_predictions(exp, ctx)
    split = ctx.split
    loaded = load_user_model(exp.user_model, split.classes, probe_images=split.test.images[:32])
    device = torch.device("cpu") if runs_on_cpu_only(loaded.model, ctx.device) else ctx.device
    fields, predictions, files = evaluate_model(loaded.model, split, device, exp.train, exp.label, loaded.gradcam)
    total, trainable, counted = loaded.parameters
    um = exp.user_model
    fields.update(
        model=exp.model, history=[],
        parameters={"total": total, "trainable": trainable, "counted_from": counted},
        load={"file": um.load or um.checkpoint, "format": loaded.format, "outputs": loaded.outputs,
              "outputs_detected": loaded.outputs_detected, "layout": loaded.layout, "notes": loaded.notes},
        model_info={"name": exp.label, "study": "user", "paper": "user-supplied model",
                    "input": loaded.model.spec.describe(), "notes": "; ".join(loaded.notes)})
    if device.type != ctx.device.type:
        fields["load"]["notes"].append(f"run on {device} (onnxruntime's CPU provider), not {ctx.device}")
    return Outcome(fields, predictions=predictions, files=files)
