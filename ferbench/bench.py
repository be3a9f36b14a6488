"""Throughput benchmarks: ferbench's device-resident pipeline against the conventional one.

fast          the training set is one uint8 tensor on the device; a batch is an index slice,
              augmented in one batched warp, resized/normalized inside the model (ferbench's engine).
conventional  torch DataLoader over PIL images with per-image torchvision transforms (the same
              augmentations, resize and normalization), then the same network.

Both train the same architecture with the same optimizer and batch size in the same process; the
ratio is fast / conventional images per second.

efficiency    how close a training step comes to the machine's limit: the step's FLOPs (forward and
              backward, counted by torch's FlopCounterMode) per second, as a fraction of the FLOP/s of
              a 2048x2048 matmul in the same dtype (fp32, or fit()'s autocast dtype) measured in the
              same process right after (a shared machine's speed drifts, so both are measured back
              to back).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .augment import AugmentConfig
from .engine import (
    TrainConfig,
    FullBatchCompiled,
    _forward_batches,
    amp_dtype,
    apply_freeze,
    build_optimizer,
    dtype_name,
    compile_unavailable,
    fit,
    model_amp_dtype,
    prepare_model,
    synchronize,
    to_device_images,
    training_batch,
)
from .models import FERModel, create_model, model_info

DEFAULT_AUGMENT = AugmentConfig(rotation=15, shift=0.1, flip=True)


def _sync(device: torch.device) -> None:
    synchronize(device)  # CUDA and MPS


def _model(name: str, device: torch.device, input_size: int | None) -> FERModel:
    kw = {"pretrained": False} if model_info(name).pretrained else {}
    m = create_model(name, num_classes=7, **kw).to(device)
    if input_size and m.spec.size > 48:  # as profiles do: only upscaled ImageNet-size inputs change
        m.set_input_size(input_size)
    return m


def conventional_transform(spec, aug: AugmentConfig):
    """Per-image torchvision transforms equivalent to ``aug`` plus the model's input adaptation."""
    import torchvision.transforms as T

    ops = []
    if aug.rotation or aug.shift or aug.zoom or aug.shear:
        ops.append(T.RandomAffine(degrees=aug.rotation, translate=(aug.shift, aug.shift) if aug.shift else None,
                                  scale=(1 - aug.zoom, 1 + aug.zoom) if aug.zoom else None,
                                  shear=aug.shear or None))
    if aug.crop_scale:
        ops.append(T.RandomResizedCrop(48, scale=tuple(aug.crop_scale)))
    if aug.flip:
        ops.append(T.RandomHorizontalFlip())
    if spec.size != 48:
        ops.append(T.Resize(spec.size))
    if spec.channels == 3:
        ops.append(T.Grayscale(3))
    ops += [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    return T.Compose(ops)


class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def yardstick_tf32(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the fp32 yardstick runs on TF32 tensor cores: on CUDA, cuDNN convolutions use TF32 by
    default (``cudnn.allow_tf32``) while fp32 matmuls do not (``cuda.matmul.allow_tf32``); a training step
    of convolutions measured against a pure-fp32 matmul could then reach "more than 100 %"."""
    return device.type == "cuda" and dtype == torch.float32 and bool(torch.backends.cudnn.allow_tf32)


def matmul_flops(device: torch.device, n: int = 2048, iters: int = 5, dtype: torch.dtype = torch.float32,
                 repeats: int = 3) -> float:
    """FLOP/s of n x n matmuls on ``device``, the best of ``repeats`` timings of ``iters`` back-to-back
    matmuls between two synchronizations (one matmul per sync measures a GPU's launch latency): what
    this process can reach on dense math right now, the yardstick of :func:`train_efficiency`. On CUDA
    in fp32, in TF32 where the step's convolutions use it (:func:`yardstick_tf32`)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = yardstick_tf32(device, dtype) or old
    try:
        a @ b  # warm-up: thread pool, BLAS dispatch
        best = math.inf
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                a @ b
            _sync(device)
            best = min(best, (time.perf_counter() - t0) / iters)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return 2 * n ** 3 / best


def _raw(formula):
    """A registered formula without its shape wrapper (FlopCounterMode wraps custom ones itself)."""
    return getattr(formula, "__wrapped__", formula)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                        output_padding, groups, output_mask, out_shape=None, **kw) -> int:
    """torch's formula, but a grouped convolution's weight gradient counted once: torch's counts it
    ``groups`` times (its comment skips groups 'for the sake of brevity'), which puts MobileNetV2's
    depthwise layers at ~100x their FLOPs."""
    from torch.utils import flop_counter as fcm

    n = _raw(fcm.conv_backward_flop)(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation,
                                     transposed, output_padding, groups, output_mask, out_shape=out_shape)
    if groups > 1 and output_mask[1]:
        def t(shape):  # batch and channel dimensions swapped, as torch's formula does
            return [shape[1], shape[0], *shape[2:]]

        gw = t(fcm.get_shape(out_shape[1]))
        w = fcm.conv_flop_count(t(grad_out_shape), t(x_shape), gw) if transposed else \
            fcm.conv_flop_count(t(x_shape), t(grad_out_shape), gw)
        n -= w - w // groups
    return n


def _flop_formulas() -> dict:
    """Corrections to FlopCounterMode's table: grouped convolution backward, and CPU attention
    kernels it has no entry for (counted with torch's own attention formulas)."""
    from torch.utils import flop_counter as fcm

    aten = torch.ops.aten
    out = {aten.convolution_backward: _conv_backward_flop}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        out[aten._scaled_dot_product_flash_attention_for_cpu] = _raw(fcm.sdpa_flop)
        out[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _raw(fcm.sdpa_backward_flop)
    return out


def count_flops(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` as torch's FlopCounterMode counts them (matmuls, convolutions,
    attention; elementwise ops and pooling count 0), with the corrections of :func:`_flop_formulas`."""
    with FlopCounterMode(display=False, custom_mapping=_flop_formulas()) as fc:
        fn(*args)
    return fc.get_total_flops()


def _step_flops(m: FERModel, xb: torch.Tensor, yb: torch.Tensor) -> int:
    """FLOPs of one training step's forward + backward."""
    n = count_flops(lambda: F.cross_entropy(m(xb), yb).backward())
    m.zero_grad(set_to_none=True)
    return n


def flops_countable(m: torch.nn.Module) -> bool:
    """False where FlopCounterMode misses the bulk of the work: recurrent layers run as fused
    oneDNN/cuDNN kernels it has no formula for, so a FLOP ratio would be meaningless."""
    return not any(isinstance(x, torch.nn.RNNBase) for x in m.modules())


def train_throughput_fast(name: str, images, labels, device, batch_size: int, steps: int,
                          aug: AugmentConfig = DEFAULT_AUGMENT, input_size: int | None = None,
                          warmup: int = 5, flops: dict | None = None, amp: str = "auto") -> float:
    """The engine's own path: prepare_model + training_batch (channels_last, batched warp).
    With ``flops`` (a dict), also stores the FLOPs of one training step in ``flops["step"]``."""
    cfg = TrainConfig(batch_size=batch_size, augment=aug, amp=amp)
    m = prepare_model(_model(name, device, input_size), cfg, device).train()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 1e-3)
    x, y = to_device_images(images, device), torch.from_numpy(labels).to(device)
    g = torch.Generator().manual_seed(0)  # the engine draws augmentation parameters on the CPU
    perm = torch.randperm(len(x), device=device)

    def batch(s):
        return perm[(s * batch_size) % (len(x) - batch_size):][:batch_size]

    dtype = model_amp_dtype(cfg, device, m)  # autocast as fit() does on this device
    if flops is not None:
        idx = batch(0)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            flops["step"] = _step_flops(m, training_batch(x, idx, cfg, g), y[idx])
        flops["countable"] = flops_countable(m)
        flops["dtype"] = dtype or torch.float32
    t0 = None
    for s in range(warmup + steps):
        if s == warmup:
            _sync(device)
            t0 = time.perf_counter()
        idx = batch(s)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(m(training_batch(x, idx, cfg, g)).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


def train_efficiency(name: str, images, labels, device, batch_size: int, steps: int,
                     input_size: int | None = None, amp: str = "auto") -> dict:
    """One measurement of the physical-limit ratio: the training step's FLOP/s, then the FLOP/s of
    a matmul in the dtype the step computes in (fp32, or the autocast dtype fit() uses here)."""
    fl: dict = {}
    ips = train_throughput_fast(name, images, labels, device, batch_size, steps, input_size=input_size, flops=fl,
                                amp=amp)
    mm = matmul_flops(device, dtype=fl["dtype"], iters=2 if device.type == "cpu" else 20)
    achieved = fl["step"] * ips / batch_size
    return {"train_fast_ips": ips, "step_flops": fl["step"], "train_flops_per_s": achieved,
            "matmul_flops_per_s": mm,
            "matmul_dtype": "tf32" if yardstick_tf32(device, fl["dtype"]) else dtype_name(fl["dtype"]),
            "efficiency": achieved / mm if fl["countable"] else None}


def train_throughput_conventional(name: str, images, labels, device, batch_size: int, steps: int,
                                  aug: AugmentConfig = DEFAULT_AUGMENT, input_size: int | None = None,
                                  workers: int = 2, warmup: int = 5, amp: str = "auto") -> float:
    m = _model(name, device, input_size).train()
    dtype = model_amp_dtype(TrainConfig(amp=amp), device, m)  # the same autocast as the fast path: like with like
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 1e-3)
    ds = _PILDataset(images, labels, conventional_transform(m.spec, aug))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    t0, done = None, 0
    while done < warmup + steps:
        for xb, yb in loader:
            if done == warmup:
                _sync(device)
                t0 = time.perf_counter()
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(m.net(xb).float(), yb)  # the transforms already adapted the input
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                break
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


@torch.inference_mode()
def infer_throughput_fast(name, images, device, batch_size, input_size=None, amp: str = "auto") -> float:
    """Evaluation's path, in the precision evaluation uses (the model's training autocast)."""
    m = prepare_model(_model(name, device, input_size), TrainConfig(), device).eval()
    dtype = model_amp_dtype(TrainConfig(amp=amp), device, m)
    x = to_device_images(images, device)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        m(x[:batch_size].float().div(255))
        _sync(device)
        t0 = time.perf_counter()
        for i in range(0, len(x), batch_size):
            m(x[i:i + batch_size].float().div_(255))
    _sync(device)
    return len(x) / (time.perf_counter() - t0)


@torch.inference_mode()
def infer_throughput_conventional(name, images, device, batch_size, input_size=None, workers: int = 2,
                                  amp: str = "auto") -> float:
    m = _model(name, device, input_size).eval()
    dtype = model_amp_dtype(TrainConfig(amp=amp), device, m)  # like with like
    ds = _PILDataset(images, np.zeros(len(images), dtype=np.int64), conventional_transform(m.spec, AugmentConfig()))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
    t0 = time.perf_counter()
    for xb, _ in loader:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            m.net(xb.to(device))
    _sync(device)
    return len(images) / (time.perf_counter() - t0)


def feature_cache_speedup(images, labels, device, input_size: int = 224, batch_size: int = 64) -> dict:
    """ResNet-50 transfer: seconds of the second epoch with and without the frozen-feature cache."""
    out = {}
    for cached in (True, False):
        m = _model("resnet50_transfer", device, None)
        m.freeze_backbone(True)  # as with ImageNet weights; timing does not depend on their values
        cfg = TrainConfig(epochs=2, batch_size=batch_size, feature_cache=cached, input_size=input_size,
                          restore_best=False)
        r = fit(m, images, labels, None, None, cfg, device=device)
        out["cached" if cached else "uncached"] = {"first_epoch_s": r.history[0]["seconds"],
                                                   "later_epoch_s": r.history[1]["seconds"],
                                                   "feature_cache_used": r.feature_cache_used}
    out["speedup_after_first_epoch"] = out["uncached"]["later_epoch_s"] / out["cached"]["later_epoch_s"]
    out.update(images=len(images), input_size=input_size)
    return out


def _touch(d) -> int:
    """Read every image once, so a lazily mapped cache pays for its page faults inside the timing."""
    return int(d.images[:, ::8, ::8].sum())


def load_speedup(spec: str) -> dict:
    """Decoding the source vs reading ferbench's array cache (a private temporary cache); both
    timings include reading every image once."""
    import os

    from .data import load_data

    old = os.environ.get("FERBENCH_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FERBENCH_CACHE"] = tmp
        try:
            t0 = time.perf_counter()
            d = load_data(spec)  # decodes and writes the cache
            _touch(d)
            decode = time.perf_counter() - t0
            t0 = time.perf_counter()
            _touch(load_data(spec))
            cached = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("FERBENCH_CACHE", None)
            else:
                os.environ["FERBENCH_CACHE"] = old
    return {"source": spec, "images": len(d), "decode_s": decode, "cache_s": cached, "speedup": decode / cached}


def run_bench(models: list[str], images: np.ndarray, labels: np.ndarray, device: torch.device,
              batch_size: int = 64, steps: int = 20, workers: int = 2, input_size: int | None = None,
              repeats: int = 3, progress=None, amp: str = "auto") -> list[dict]:
    """Per model, the median of ``repeats`` interleaved measurements of each pipeline (a shared
    2-core machine varies by tens of percent between back-to-back runs).

    ``efficiency`` is the median over repeats of (training FLOP/s) / (matmul FLOP/s), each pair
    measured back to back; None where the FLOP counter cannot see the model's work (the LSTM)."""
    rows = []
    n_inf = min(len(images), batch_size * steps)

    def med(fn, *args, **kw) -> float:
        return float(np.median([fn(*args, **kw) for _ in range(repeats)]))

    for name in models:
        if progress:
            progress(name)
        eff = [train_efficiency(name, images, labels, device, batch_size, steps, input_size, amp)
               for _ in range(repeats)]
        tf = float(np.median([e["train_fast_ips"] for e in eff]))
        ratios = [e["efficiency"] for e in eff if e["efficiency"] is not None]
        tc = med(train_throughput_conventional, name, images, labels, device, batch_size, steps,
                 input_size=input_size, workers=workers, amp=amp)
        inf_f = med(infer_throughput_fast, name, images[:n_inf], device, batch_size, input_size, amp=amp)
        inf_c = med(infer_throughput_conventional, name, images[:n_inf], device, batch_size, input_size, workers,
                    amp=amp)
        rows.append({"model": name, "device": str(device), "batch_size": batch_size, "workers": workers,
                     "train_fast_ips": tf, "train_conventional_ips": tc, "train_ratio": tf / tc,
                     "train_step_gflop": eff[0]["step_flops"] / 1e9,
                     "train_gflops": float(np.median([e["train_flops_per_s"] for e in eff])) / 1e9,
                     "matmul_gflops": float(np.median([e["matmul_flops_per_s"] for e in eff])) / 1e9,
                     "matmul_dtype": eff[0]["matmul_dtype"],
                     "efficiency": float(np.median(ratios)) if ratios else None,
                     "infer_fast_ips": inf_f, "infer_conventional_ips": inf_c, "infer_ratio": inf_f / inf_c})
    return rows


# --- time estimates before a run ---------------------------------------------------------------------

# Per experiment, besides training and evaluation: Grad-CAM on 7 images, metrics with bootstrap CIs,
# figures, writing model.pt (measured 1-2 s on the 2-core CPU; inference timing is counted apart).
FIXED_SECONDS = 1.5
MEASURE_INFERENCE_IMAGES = 13 * 64  # engine.measure_inference: 3 warm-up + 10 timed batches of 64


CALIBRATION_MAX_AGE_S = 7 * 86400  # drivers, torch builds and clocks change: a week-old timing is taken again
UNTRUSTED_MAX_AGE_S = 3600  # a busy or unsteady timing: long enough for a dry run and the run after it to agree
CALIBRATION_BUDGET_S = 60.0  # a dry run or a run header never waits longer than this for its estimates
STEADY_RATIO = 1.5  # two timed blocks further apart than this: the machine's speed moved under the timing
CPU_EVAL_BATCH_CAP = 64  # bounds a CPU's calibration time; GPUs are timed at the real evaluation batch size


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
            cal = session[key] = calibrate(m, exp.train, device, deadline=deadline)
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
