"""Throughput benchmarks: ferbench's device-resident pipeline against the conventional one.

fast          the training set is one uint8 tensor on the device; a batch is an index slice,
              augmented in one batched warp, resized/normalized inside the model (ferbench's engine).
conventional  torch DataLoader over PIL images with per-image torchvision transforms (the same
              augmentations, resize and normalization), then the same network.

Both train the same architecture with the same optimizer and batch size in the same process; the
ratio is fast / conventional images per second.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentConfig
from .engine import TrainConfig, fit, prepare_model, to_device_images, training_batch
from .models import FERModel, create_model, model_info

DEFAULT_AUGMENT = AugmentConfig(rotation=15, shift=0.1, flip=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


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


def train_throughput_fast(name: str, images, labels, device, batch_size: int, steps: int,
                          aug: AugmentConfig = DEFAULT_AUGMENT, input_size: int | None = None,
                          warmup: int = 5) -> float:
    """The engine's own path: prepare_model + training_batch (channels_last, batched warp)."""
    cfg = TrainConfig(batch_size=batch_size, augment=aug)
    m = prepare_model(_model(name, device, input_size), cfg, device).train()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], 1e-3)
    x, y = to_device_images(images, device), torch.from_numpy(labels).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    perm = torch.randperm(len(x), device=device)
    t0 = None
    for s in range(warmup + steps):
        if s == warmup:
            _sync(device)
            t0 = time.perf_counter()
        idx = perm[(s * batch_size) % (len(x) - batch_size):][:batch_size]
        loss = F.cross_entropy(m(training_batch(x, idx, cfg, g)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


def train_throughput_conventional(name: str, images, labels, device, batch_size: int, steps: int,
                                  aug: AugmentConfig = DEFAULT_AUGMENT, input_size: int | None = None,
                                  workers: int = 2, warmup: int = 5) -> float:
    m = _model(name, device, input_size).train()
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
            loss = F.cross_entropy(m.net(xb), yb)  # the transforms already adapted the input
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                break
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


@torch.inference_mode()
def infer_throughput_fast(name, images, device, batch_size, input_size=None) -> float:
    m = prepare_model(_model(name, device, input_size), TrainConfig(), device).eval()
    x = to_device_images(images, device)
    m(x[:batch_size].float().div(255))
    _sync(device)
    t0 = time.perf_counter()
    for i in range(0, len(x), batch_size):
        m(x[i:i + batch_size].float().div_(255))
    _sync(device)
    return len(x) / (time.perf_counter() - t0)


@torch.inference_mode()
def infer_throughput_conventional(name, images, device, batch_size, input_size=None, workers: int = 2) -> float:
    m = _model(name, device, input_size).eval()
    ds = _PILDataset(images, np.zeros(len(images), dtype=np.int64), conventional_transform(m.spec, AugmentConfig()))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
    t0 = time.perf_counter()
    for xb, _ in loader:
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
              repeats: int = 3, progress=None) -> list[dict]:
    """Per model, the median of ``repeats`` interleaved measurements of each pipeline (a shared
    2-core machine varies by tens of percent between back-to-back runs)."""
    rows = []
    med = lambda fn: float(np.median([fn() for _ in range(repeats)]))  # noqa: E731
    for name in models:
        if progress:
            progress(name)
        tf = med(lambda: train_throughput_fast(name, images, labels, device, batch_size, steps, input_size=input_size))
        tc = med(lambda: train_throughput_conventional(name, images, labels, device, batch_size, steps,
                                                       input_size=input_size, workers=workers))
        n_inf = min(len(images), batch_size * steps)
        inf_f = med(lambda: infer_throughput_fast(name, images[:n_inf], device, batch_size, input_size))
        inf_c = med(lambda: infer_throughput_conventional(name, images[:n_inf], device, batch_size, input_size,
                                                          workers))
        rows.append({"model": name, "device": str(device), "batch_size": batch_size, "workers": workers,
                     "train_fast_ips": tf, "train_conventional_ips": tc, "train_ratio": tf / tc,
                     "infer_fast_ips": inf_f, "infer_conventional_ips": inf_c, "infer_ratio": inf_f / inf_c})
    return rows
