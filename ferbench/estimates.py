"""Run-time estimates: a few timed training steps per model and device (a :class:`Calibration`,
cached for a week), scaled to each planned experiment's epochs and set sizes. What `ferbench run`
prints before it starts and what a dry run's plan table shows."""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .engine import (
    INFERENCE_ITERS,
    INFERENCE_WARMUP,
    FullBatchCompiled,
    TrainConfig,
    _forward_batches,
    amp_dtype,
    apply_freeze,
    build_optimizer,
    compile_unavailable,
    model_amp_dtype,
    prepare_model,
    synchronize,
    training_batch,
)
from .models import FERModel

# Per experiment, besides training and evaluation: Grad-CAM on 7 images, metrics with bootstrap CIs,
# figures, writing model.pt (measured 1-2 s on the 2-core CPU; inference timing is counted apart).
FIXED_SECONDS = 1.5
MEASURE_INFERENCE_IMAGES = (INFERENCE_WARMUP + INFERENCE_ITERS) * 64  # engine.measure_inference's batches of 64

CALIBRATION_MAX_AGE_S = 7 * 86400  # drivers, torch builds and clocks change: a week-old timing is taken again
UNTRUSTED_MAX_AGE_S = 3600  # a busy or unsteady timing: long enough for a dry run and the run after it to agree
CALIBRATION_BUDGET_S = 60.0  # a dry run or a run header never waits longer than this for its estimates
STEADY_RATIO = 1.5  # two timed blocks further apart than this: the machine's speed moved under the timing
CPU_EVAL_BATCH_CAP = 64  # bounds a CPU's calibration time; GPUs are timed at the real evaluation batch size
# What a run times per (model, settings) for its estimates: warm-up steps, then two blocks of STEPS / 2
# (read at call time: the test suite, which checks estimates apart, times the fewest).
CALIBRATION_WARMUP, CALIBRATION_STEPS = 2, 4


@dataclass(frozen=True)
class Calibration:
    """What one model costs on this device under one train config, from a few timed steps."""
    step_s: float  # one training step (the head's alone when fit() will cache frozen features)
    frozen_step_s: float | None  # a step with the backbone frozen (transfer models with freeze_epochs)
    eval_s_per_image: float  # inference through the whole model, at the eval batch size
    feature_cache: bool  # fit() computes the frozen backbone's features once
    created: float = 0.0  # unix time of the measurement
    compile_s: float = 0.0  # compile: true: torch.compile's first-call cost for the training graph
    trusted: bool = True  # steady timings on an idle machine: kept a week (else an hour)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_cache(cls, d, now: float | None = None) -> Calibration | None:
        """An entry of the calibration cache, or None if it is not one, or is older than a week (an hour
        if it was not trusted: taken on a busy machine or unsteady). The file may be damaged or written by
        someone else: it only ever costs a new calibration."""
        try:
            cal = cls(**d)
            times = [cal.step_s, cal.eval_s_per_image, cal.compile_s] + ([cal.frozen_step_s] if cal.frozen_step_s is not None else [])
            if not (all(isinstance(t, (int, float)) and 0 <= t < 1e5 for t in times)
                    and isinstance(cal.feature_cache, bool) and isinstance(cal.created, (int, float))):
                return None
            age = (time.time() if now is None else now) - cal.created
            if not isinstance(cal.trusted, bool):
                return None
            return cal if 0 <= age < (CALIBRATION_MAX_AGE_S if cal.trusted else UNTRUSTED_MAX_AGE_S) else None
        except TypeError:
            return None


def machine_busy(device: torch.device) -> bool:
    """Another process holds a CPU core (1-minute load average): CPU timings taken now are slow ones."""
    if device.type != "cpu" or not hasattr(os, "getloadavg"):
        return False
    return os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5


def _over(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _time_steps(m: FERModel, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, device, dtype, steps: int,
                warmup: int, fn=None, deadline: float | None = None) -> tuple[float, bool, float]:
    """(seconds per training step as fit() runs it, steady, seconds of the warm-up steps): two blocks of
    ``steps // 2`` steps, each timed between two synchronizations only (a sync per step stalls a GPU's
    queue, which fit() never does); steady when the blocks agree within :data:`STEADY_RATIO`. Past
    ``deadline`` (time.monotonic) it stops at the next step and answers from what it timed (not steady)."""
    fn = fn or m
    opt = build_optimizer(m, cfg)
    g = torch.Generator().manual_seed(0)  # the engine's augmentation generator is a CPU one
    bs = cfg.batch_size

    def step(s: int) -> None:
        idx = torch.arange(s * bs, (s + 1) * bs, device=device) % len(x)
        xb = x[idx] if x.dtype != torch.uint8 else training_batch(x, idx, cfg, g)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(fn(xb).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    synchronize(device)
    t0, done = time.perf_counter(), 0
    while done < max(warmup, 1) and not (done and _over(deadline)):
        step(done)
        done += 1
    synchronize(device)
    warm_s = time.perf_counter() - t0
    per_block, blocks = max(1, steps // 2), []
    for b in range(2):
        if _over(deadline):
            break
        synchronize(device)
        t0 = time.perf_counter()
        for s in range(per_block):
            step(done + b * per_block + s)
        synchronize(device)
        blocks.append((time.perf_counter() - t0) / per_block)
    if len(blocks) < 2:  # out of time: the warm-up's first-call costs count in, so it is not kept
        return (blocks[0] if blocks else warm_s / done), False, warm_s
    return float(np.mean(blocks)), max(blocks) < STEADY_RATIO * min(blocks), warm_s


def _eval_seconds(m: FERModel, x: torch.Tensor, batch: int, dtype, device, deadline: float | None = None) -> float:
    """Seconds per image of inference at ``batch`` (one warm-up batch for this shape unless out of time,
    then one timed)."""
    if not _over(deadline):
        _forward_batches(m, x[:batch], batch, dtype, device)
    synchronize(device)
    t0 = time.perf_counter()
    _forward_batches(m, x[batch:2 * batch], batch, dtype, device)
    synchronize(device)
    return (time.perf_counter() - t0) / batch


def calibrate(model: FERModel, cfg: TrainConfig, device: torch.device, *, steps: int = 4, warmup: int = 2,
              deadline: float | None = None) -> Calibration:
    """Time ``warmup + steps`` training steps and an inference batch at the evaluation batch size (capped
    at 64 on a CPU) of ``model`` (built as the experiment builds it; it is trained on random pixels here,
    so pass a throw-away instance). Pixel values do not change the speed once denormals are flushed.
    Past ``deadline`` each timing stops at its next step: the answer is rougher and not trusted."""
    busy = machine_busy(device)
    m = prepare_model(model, cfg, device).train()
    dtype = model_amp_dtype(cfg, device, m)
    eval_bs = min(cfg.eval_batch_size, CPU_EVAL_BATCH_CAP) if device.type == "cpu" else cfg.eval_batch_size
    n = cfg.batch_size * (warmup + steps)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (max(n, 2 * eval_bs), 1, 48, 48), generator=gen, dtype=torch.uint8).to(device)
    y = torch.randint(0, m.num_classes, (len(x),), generator=gen).to(device)
    m.eval()
    eval_s = _eval_seconds(m, x, eval_bs, dtype, device, deadline)
    m.train()
    use_cache = (cfg.feature_cache and m.backbone_frozen and cfg.freeze_epochs == 0 and not cfg.augment.active)
    frozen, steady = None, True
    if use_cache:  # only the head trains, on features: time it on features of the right width
        with torch.no_grad():
            feats = m.features(x[:1].float() / 255)
        f = torch.randn(len(x), *feats.shape[1:], device=device)
        fn = _compiled(m.classify, cfg, device)
        step, steady, warm = _time_steps(m, cfg, f, y, device, dtype, steps, warmup, fn=fn, deadline=deadline)
    else:
        if cfg.freeze_epochs > 0 and m.has_backbone:
            m.freeze_backbone(True)
            frozen, steady, _ = _time_steps(m, cfg, x, y, device, dtype, steps, warmup, deadline=deadline)
            apply_freeze(m, cfg, cfg.freeze_epochs)
        step, steady2, warm = _time_steps(m, cfg, x, y, device, dtype, steps, warmup, fn=_compiled(m, cfg, device),
                                          deadline=deadline)
        steady = steady and steady2
    compile_s = max(0.0, warm - warmup * step) if cfg.compile else 0.0
    return Calibration(step, frozen, eval_s, use_cache, created=time.time(),
                       trusted=steady and not busy and not machine_busy(device), compile_s=compile_s)


def _compiled(fn, cfg: TrainConfig, device: torch.device):
    """The step function as fit() compiles it, so the warm-up steps pay (and measure) the compile."""
    return FullBatchCompiled(fn, cfg.batch_size) if cfg.compile and compile_unavailable(device) is None else fn


def estimate_fit_seconds(cal: Calibration, cfg: TrainConfig, n_train: int, n_val: int, num_classes: int = 7) -> float:
    """Seconds fit() needs for ``cfg.epochs`` epochs (an upper bound when early stopping ends it), with
    compile: true's first-call cost twice (training and evaluation each compile one graph)."""
    return _fit_seconds(cal, cfg, n_train, n_val, num_classes) + 2 * cal.compile_s


def _fit_seconds(cal: Calibration, cfg: TrainConfig, n_train: int, n_val: int, num_classes: int) -> float:
    steps = math.ceil(n_train / cfg.batch_size)
    if cfg.monitor_per_class:  # per-epoch validation on a capped subset
        n_val = min(n_val, cfg.monitor_per_class * num_classes)
    if cal.feature_cache:  # features of train and val once, then the head; validation on features
        return (n_train + n_val) * cal.eval_s_per_image + cfg.epochs * steps * cal.step_s
    frozen_epochs = min(cfg.freeze_epochs, cfg.epochs) if cal.frozen_step_s is not None else 0
    train = steps * (frozen_epochs * (cal.frozen_step_s or 0.0) + (cfg.epochs - frozen_epochs) * cal.step_s)
    return train + cfg.epochs * n_val * cal.eval_s_per_image


def estimate_experiment_seconds(cal: Calibration, cfg: TrainConfig, n_train: int, n_val: int,
                                n_test: int, num_classes: int = 7) -> float:
    """fit() plus what the runner does after it: evaluation of val and test, inference timing,
    Grad-CAM, metrics and figures."""
    after = (n_val + n_test + MEASURE_INFERENCE_IMAGES) * cal.eval_s_per_image + FIXED_SECONDS
    return estimate_fit_seconds(cal, cfg, n_train, n_val, num_classes) + after


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    caps = getattr(torch.cpu, "get_capabilities", dict)() if device.type == "cpu" else {}
    return f"{device.type}:{platform.processor() or caps.get('cpu_name', '')}:{os.cpu_count()}cpu"


def calibration_key(exp, num_classes: int, device: torch.device) -> str:
    """Everything that decides what a step of ``exp`` costs here (not its data, seed or epochs):
    a cached calibration is reused only for the same model, settings, device, threads and versions."""
    from . import __version__

    cfg = exp.train.model_dump(mode="json", include={
        "batch_size", "eval_batch_size", "input_size", "channels_last", "amp", "compile", "freeze_epochs",
        "unfreeze_top", "feature_cache", "augment", "keras_defaults", "optimizer", "class_weights"})
    parts = {"model": exp.model, "model_args": exp.model_args, "classes": num_classes, "pretrained": exp.pretrained,
             "train": cfg, "device": _device_name(device), "threads": torch.get_num_threads(),
             "autocast": str(amp_dtype(exp.train, device, exp.model)),  # what amp: auto resolves to here
             "torch": torch.__version__, "ferbench": __version__, "version": 2}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class Estimates:
    """Seconds per train experiment (None: not estimated) and one line saying how they were made."""
    seconds: dict
    note: str


def _read_cache(cache: Path | None) -> dict:
    try:
        known = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    except (OSError, ValueError):
        known = {}  # unreadable cache: calibrate again
    return known if isinstance(known, dict) else {}


def _estimate_note(cached: int, timed: int, untrusted: int, over: int, budget_s: float) -> str:
    parts = [f"{cached} model setting(s) from the calibration cache"] if cached else []
    if timed:
        parts.append(f"{timed} timed now" + (f" ({untrusted} on a busy machine or unsteady: kept an hour, not "
                                             "a week)" if untrusted else ""))
    if over:
        parts.append(f"{over} not estimated: the {budget_s:.0f} s calibration budget was spent (they are timed "
                     "by the next run or dry run)")
    return "time estimates: " + ("; ".join(parts) if parts else "nothing to estimate")


def estimate_experiments(items, device: torch.device, *, cache: Path | None = None, progress=None,
                         budget_s: float = CALIBRATION_BUDGET_S) -> Estimates:
    """Estimated seconds per train experiment, from ``items`` (experiment, split) pairs: each distinct
    (model, settings) is calibrated once on ``device`` (cached in ``cache``, a JSON file, for a week when
    its timings were steady on an idle machine, else for an hour: a dry run and the run after it agree). Calibrating stops once ``budget_s`` is spent: what is left
    has no estimate, and the note says so. None also where the model cannot be built (e.g. missing ImageNet
    weights: that experiment will fail fast)."""
    from .atomic import atomic_write_json
    from .errors import FerbenchError
    from .models import create_model as _create

    known, fresh = _read_cache(cache), False
    session: dict = {}  # this call's calibrations, the untrusted ones included
    out: dict = {}
    deadline = time.monotonic() + budget_s
    counts = {"cached": set(), "timed": set(), "untrusted": set(), "over": set()}
    for exp, split in items:
        if exp.kind != "train":
            continue
        k = len(split.classes)
        key = calibration_key(exp, k, device)
        cal = session.get(key) or Calibration.from_cache(known.get(key))
        if cal is None:
            if time.monotonic() > deadline:
                out[exp.id] = None
                counts["over"].add(key)
                continue
            if progress:
                progress(exp)
            try:
                m = _create(exp.model, num_classes=k, pretrained=exp.pretrained, weights=exp.weights,
                            keras_defaults=exp.train.keras_defaults, **exp.model_args)
            except FerbenchError:
                out[exp.id] = None
                continue
            cal = session[key] = calibrate(m, exp.train, device, steps=CALIBRATION_STEPS,
                                          warmup=CALIBRATION_WARMUP, deadline=deadline)
            counts["timed"].add(key)
            known[key], fresh = cal.as_dict(), True
            if not cal.trusted:
                counts["untrusted"].add(key)
        elif key not in session:
            counts["cached"].add(key)
        sz = split.sizes()
        out[exp.id] = estimate_experiment_seconds(cal, exp.train, sz["train"], sz["val"], sz["test"], k)
    if fresh and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache, known)
    n = {k_: len(v) for k_, v in counts.items()}
    return Estimates(out, _estimate_note(n["cached"], n["timed"], n["untrusted"], n["over"], budget_s))
