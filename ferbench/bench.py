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

import math
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .augment import AugmentConfig
from .engine import (
    TrainConfig,
    dtype_name,
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
