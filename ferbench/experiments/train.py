"""``kind: train``: train a registered model (resuming from its checkpoint), then evaluate it.
With ``--eval-only`` the saved model.pt is evaluated again instead."""
from __future__ import annotations

import numpy as np

from ..data.splits import cap_per_class
from ..engine import CheckpointUnusable, dtype_from_name, fit, seed_everything
from ..errors import FerbenchError
from ..models import count_flops, count_parameters, create_model, model_info
from ..models.adapter import InputMismatch
from ..schema.experiment import TrainExperiment
from ..schema.suite import UserModelConfig
from .context import Context, Outcome
from .evaluate import evaluate_model


def run_train(exp: TrainExperiment, ctx: Context, discarded: str | None = None) -> Outcome:
    if ctx.options.eval_only:
        return _reevaluate(exp, ctx)
    split = ctx.split
    checkpoint = ctx.store.checkpoint(exp.id, ctx.config_hash)
    seed_everything(exp.seed)  # weight initialisation is part of what the seed fixes
    try:
        model = create_model(exp.model, num_classes=len(split.classes), pretrained=exp.pretrained,
                             weights=exp.weights, keras_defaults=exp.train.keras_defaults, study_input=exp.input,
                             **exp.model_args)
    except InputMismatch as exc:
        raise FerbenchError(str(exc)) from None
    tr, va = split.train, split.val
    if va is not None and exp.train.monitor_per_class:  # per-epoch validation on a fixed subset
        va = cap_per_class(va, per_class=exp.train.monitor_per_class, seed=exp.split.seed)
    progress = ctx.progress
    if exp.train.soft_labels and tr.soft is None:
        raise FerbenchError(f"train: {{soft_labels: true}} needs label distributions, and {tr.dataset} ({tr.source}) "
                            "has none: FER+ has them (--data ferplus:PATH, any label mode)")
    try:
        fr = fit(model, tr.images, tr.labels, va.images if va is not None else None,
                 va.labels if va is not None else None, exp.train, device=ctx.device, seed=exp.seed,
                 checkpoint=checkpoint, on_epoch=progress and (lambda rec: progress("epoch", rec)),
                 on_batch=progress and (lambda s, n, loss: progress("batch", (s, n, loss))),
                 train_soft=tr.soft if exp.train.soft_labels else None)
    except CheckpointUnusable as exc:
        if discarded is not None:
            raise  # the checkpoint is gone by now: cannot happen twice
        return run_train(exp, ctx, discarded=str(exc))  # a fresh model, seeded as if there was no checkpoint
    fields, predictions, files = evaluate_model(model, split, ctx.device, exp.train, exp.label,
                                                amp=dtype_from_name(fr.autocast))
    hist = fr.history
    fields["timing"].update(train_seconds=fr.train_seconds,
                            seconds_per_epoch=float(np.mean([r["seconds"] for r in hist])) if hist else None)
    fields.update(
        model=exp.model, history=hist, model_info=model_info(exp.model).as_dict(),
        parameters={"total": count_parameters(model), "trainable": count_parameters(model, trainable_only=True),
                    "flops": count_flops(model)},
        training={"epochs_run": len(hist), "best_epoch": fr.best_epoch, "reported_epoch": fr.reported_epoch,
                  "stopped_early": fr.stopped_early, "resumed_from_epoch": fr.resumed_from_epoch,
                  "feature_cache": fr.feature_cache_used, "autocast": fr.autocast,
                  "soft_labels": exp.train.soft_labels,
                  "checkpoint_discarded": fr.checkpoint_discarded or discarded},
        deviations=exp.deviations + autocast_deviation(fr.autocast, exp.train.amp) + (
            [f"compile: true not applied, trained eagerly (same math): {fr.compile_skipped}"]
            if fr.compile_skipped else []) + bn_momentum_deviation(fr.bn_momentum_replaced, exp.train.bn_momentum))
    payload = {"state_dict": model.state_dict(), "model": exp.model, "model_args": exp.model_args,
               "input": {"size": model.spec.size, "channels": model.spec.channels, "mean": list(model.spec.mean),
                         "std": list(model.spec.std)},
               "classes": list(split.classes), "config_hash": ctx.config_hash}
    return Outcome(fields, predictions=predictions, model_payload=payload, files=files, checkpoint=checkpoint)


def bn_momentum_deviation(replaced: list[float], momentum: float | None) -> list[str]:
    """Only where a BatchNorm layer's own momentum was replaced (models without BN, or already at it: none)."""
    if not replaced:
        return []
    was = ", ".join("None (cumulative)" if v is None else f"{v:g}" for v in replaced)
    return [f"BatchNorm running statistics with momentum {momentum:g} instead of {was} (torch's convention; Keras' "
            f"0.99 is 0.01): training steps are unchanged, evaluation sees statistics of recent weights"]


AUTOCAST_MARK = " autocast (amp: "  # in every autocast deviation, this wording's and earlier ones


def autocast_deviation(autocast: str | None, amp: str) -> list[str]:
    """The papers trained in fp32 (the comparative ResNet-50 in mixed precision): say when this run did not."""
    if dtype_from_name(autocast) is None:
        return []
    return [f"training, per-epoch validation and the final val/test evaluation under {autocast}{AUTOCAST_MARK}{amp})"]


def _reevaluate(exp: TrainExperiment, ctx: Context) -> Outcome:
    """--eval-only: score the model.pt an earlier run of this very config saved; no training."""
    from ..models.loading import load_user_model

    path = ctx.store.model_path(exp.id)
    previous, _ = ctx.store.completed(exp.id, ctx.config_hash)
    if previous is None or not path.exists():
        raise FerbenchError(f"--eval-only: no complete trained model for {exp.id} under this config "
                            f"(looked for {path} and its result.json); run without --eval-only first")
    loaded = load_user_model(UserModelConfig(name=exp.model, checkpoint=str(path)), ctx.split.classes)
    autocast = previous.training.autocast  # scored in the precision it was trained in, as after training
    fields, predictions, files = evaluate_model(loaded.model, ctx.split, ctx.device, exp.train, exp.label,
                                                amp=dtype_from_name(autocast))
    fields["timing"] = {**previous.timing.model_dump(), **{k: v for k, v in fields["timing"].items() if v is not None}}
    fields.update(model=exp.model, history=[h.model_dump() for h in previous.history],
                  model_info=model_info(exp.model).as_dict(), parameters=previous.parameters.model_dump(),
                  training={**previous.training.model_dump(), "eval_only": True},
                  # how the model was trained has not changed; how it is scored may have (the wording says)
                  deviations=[d for d in previous.deviations if AUTOCAST_MARK not in d]
                  + autocast_deviation(autocast, exp.train.amp))
    # model.pt is unchanged: the new result vouches for the same file.
    return Outcome(fields, predictions=predictions, files=files, kept=["model.pt"])
