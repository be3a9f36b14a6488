"""One training/evaluation loop for every model.

The training set lives on the device as one uint8 tensor; a batch is an index slice, augmented on
the device in one warp (:mod:`ferbench.augment`) and adapted to the model's input spec inside the
model. Optimizers: Adam/AdamW/SGD; schedules: ReduceLROnPlateau or cosine; early stopping with
restore-best; class weights; label smoothing; freeze/unfreeze for transfer models; bf16/fp16
autocast where the device has it; a checkpoint every epoch so a killed run resumes.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from .augment import AugmentConfig, augment_batch
from .models import FERModel


class TrainConfig(BaseModel):
    """Training settings of one experiment (the suite's ``train:`` block)."""
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(10, gt=0)
    batch_size: int = Field(64, gt=0)
    eval_batch_size: int = Field(512, gt=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)  # L2 penalty (the CBAM study's regularizer)
    momentum: float = 0.9
    schedule: Literal["none", "plateau", "cosine"] = "none"
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(7, ge=0)
    min_lr: float = Field(1e-7, ge=0)
    early_stopping: bool = False
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    patience: int = Field(5, ge=0)
    restore_best: bool = True
    class_weights: bool = False  # 'balanced' weights n / (k * n_c) in the loss
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: AugmentConfig = AugmentConfig()
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    freeze_epochs: int = Field(0, ge=0)  # transfer models: epochs with the whole backbone frozen
    unfreeze_top: int = Field(-1, ge=-1)  # then unfreeze the top N backbone blocks (-1: all)
    unfreeze_lr_factor: float = Field(0.1, gt=0)  # LR of unfrozen backbone layers relative to lr
    feature_cache: bool = True  # frozen backbone, no augmentation: compute features once
    input_size: int | None = Field(None, gt=0)  # override the model's input size (CPU profiles)
    channels_last: bool = True  # NHWC convolutions: +14-36 % training throughput measured on CPU
    compile: bool = False


def select_device(pref: str = "auto") -> torch.device:
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA device is available")
    if pref == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps was asked for but MPS is not available")
    return torch.device(pref)


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None  # CPU autocast is slower than fp32 on most CPUs
    if cfg.amp == "fp16":
        return torch.float16
    if cfg.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    return np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)


class EarlyStopping:
    """Stops once ``patience`` epochs in a row bring no improvement of ``monitor`` (Keras semantics);
    remembers the best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0):
        self.mode = "min" if monitor.endswith("loss") else "max"
        self.patience, self.min_delta = patience, min_delta
        self.best: float | None = None
        self.best_epoch = -1
        self.bad_epochs = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def step(self, value: float, epoch: int) -> tuple[bool, bool]:
        """(improved, should_stop) after this epoch's value."""
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True, False
        self.bad_epochs += 1
        return False, self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = d["best"], d["best_epoch"], d["bad_epochs"]


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    train_seconds: float = 0.0
    feature_cache_used: bool = False
    resumed_from_epoch: int | None = None


def to_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, 48, 48) numpy -> uint8 (N, 1, 48, 48) tensor resident on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).to(device)


def _as_float(xb: torch.Tensor) -> torch.Tensor:
    return xb.float().div_(255)


def prepare_model(model: FERModel, cfg: TrainConfig, device: torch.device) -> FERModel:
    """Device, input size and memory format: everything fit() does to a model before training."""
    model.to(device)
    if cfg.input_size:
        model.set_input_size(cfg.input_size)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick its fastest kernels
    return model


def training_batch(x: torch.Tensor, idx: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The hot path of one batch: index slice of the device-resident uint8 set, one batched warp."""
    xb = augment_batch(_as_float(x[idx]), cfg.augment, gen)
    return xb.contiguous(memory_format=torch.channels_last) if cfg.channels_last else xb


def _build_optimizer(model: FERModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    backbone = set(map(id, model.net.backbone.parameters())) if model.has_backbone else set()
    head = [p for p in model.parameters() if id(p) not in backbone]
    groups = [{"params": head, "lr": cfg.lr}]
    if backbone and (cfg.freeze_epochs > 0 or not model.backbone_frozen):
        factor = cfg.unfreeze_lr_factor if cfg.freeze_epochs > 0 else 1.0
        groups.append({"params": list(model.net.backbone.parameters()), "lr": cfg.lr * factor})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.inference_mode()
def _forward_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int,
                     dtype: torch.dtype | None, device: torch.device) -> torch.Tensor:
    outs = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        xb = _as_float(xb) if xb.dtype == torch.uint8 else xb
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outs.append(fn(xb).float())
    return torch.cat(outs) if outs else torch.empty(0)


def predict_proba(model: FERModel, images: np.ndarray, device: torch.device, batch: int = 512,
                  amp: torch.dtype | None = None) -> np.ndarray:
    """Class probabilities (N, k) for uint8 images (N, 48, 48)."""
    model.eval()
    logits = _forward_batches(model, to_device_images(images, device), batch, amp, device)
    return torch.softmax(logits, 1).cpu().numpy()


def _evaluate(fn, x, y, batch, dtype, device, weight=None) -> tuple[float, float]:
    logits = _forward_batches(fn, x, batch, dtype, device)
    loss = F.cross_entropy(logits, y, weight=weight).item()
    acc = (logits.argmax(1) == y).float().mean().item()
    return loss, acc


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def fit(model: FERModel, train_images: np.ndarray, train_labels: np.ndarray,
        val_images: np.ndarray | None, val_labels: np.ndarray | None, cfg: TrainConfig, *,
        device: torch.device, seed: int = 0, checkpoint: Path | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        on_batch: Callable[[int, int, float], None] | None = None) -> FitResult:
    """Train ``model`` in place; returns the history. With ``checkpoint``, every epoch is saved
    there and an existing checkpoint is resumed from (its epoch, optimizer, schedule, RNG)."""
    seed_everything(seed)
    prepare_model(model, cfg, device)
    dtype = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    k = model.num_classes
    weight = torch.tensor(balanced_class_weights(train_labels, k), dtype=torch.float32, device=device) \
        if cfg.class_weights else None

    x_tr, y_tr = to_device_images(train_images, device), torch.from_numpy(train_labels).to(device)
    has_val = val_images is not None and len(val_images) > 0
    x_va = to_device_images(val_images, device) if has_val else None
    y_va = torch.from_numpy(val_labels).to(device) if has_val else None

    if cfg.freeze_epochs > 0 and model.has_backbone:
        model.freeze_backbone(True)
    opt = _build_optimizer(model, cfg)
    sched = None
    if cfg.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min" if cfg.monitor == "val_loss" else "max", factor=cfg.plateau_factor,
            patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    elif cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    stopper = EarlyStopping(cfg.monitor if has_val else "train_loss", cfg.patience)
    gen = torch.Generator().manual_seed(seed)  # batch order (CPU: identical on every device)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
    result = FitResult()
    best_state = None
    start_epoch = 0

    if checkpoint is not None and checkpoint.exists():
        ck = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        if ck.get("frozen") is not None and model.has_backbone:
            _apply_freeze(model, cfg, ck["epoch"] + 1)
        opt = _build_optimizer(model, cfg)
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler"):
            sched.load_state_dict(ck["scheduler"])
        stopper.load_state_dict(ck["stopper"])
        gen.set_state(ck["gen"])
        aug_gen.set_state(ck["aug_gen"].to(aug_gen.get_state().device))
        torch.set_rng_state(ck["torch_rng"])
        result.history, best_state = ck["history"], ck["best_state"]
        start_epoch = result.resumed_from_epoch = ck["epoch"] + 1
        result.train_seconds = sum(h["seconds"] for h in result.history)

    # Frozen backbone and no augmentation: the backbone's output never changes, compute it once.
    use_cache = (cfg.feature_cache and model.backbone_frozen and cfg.freeze_epochs == 0
                 and not cfg.augment.active)
    result.feature_cache_used = use_cache
    if use_cache:
        t0 = time.perf_counter()
        model.eval()
        feats = lambda x: _forward_batches(lambda b: model.net.backbone(model.adapter(b)), x,  # noqa: E731
                                           cfg.eval_batch_size, dtype, device)
        x_tr, x_va = feats(x_tr), (feats(x_va) if has_val else None)
        step_fn, eval_fn = model.net.head, model.net.head
        feature_seconds = time.perf_counter() - t0
    else:
        step_fn, eval_fn = model, model
        feature_seconds = 0.0
    if cfg.compile:  # optional: worth it on GPUs for long runs; the first steps pay the compile time
        step_fn = eval_fn = torch.compile(step_fn)

    n = len(x_tr)
    steps = math.ceil(n / cfg.batch_size)
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.freeze_epochs > 0 and model.has_backbone and epoch == cfg.freeze_epochs:
            _apply_freeze(model, cfg, epoch)
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        tot_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for s in range(steps):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            yb = y_tr[idx]
            xb = x_tr[idx] if use_cache else training_batch(x_tr, idx, cfg, aug_gen)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = step_fn(xb)
                loss = F.cross_entropy(logits.float(), yb, weight=weight, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            tot_loss += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
            if on_batch is not None:
                on_batch(s + 1, steps, loss.item() if (s + 1) % 20 == 0 or s + 1 == steps else float("nan"))
        rec = {"epoch": epoch + 1, "train_loss": tot_loss.item() / n, "train_accuracy": correct.item() / n,
               "lr": opt.param_groups[0]["lr"]}
        if has_val:
            model.eval()
            rec["val_loss"], rec["val_accuracy"] = _evaluate(eval_fn, x_va, y_va, cfg.eval_batch_size, dtype,
                                                             device, weight)
        rec["seconds"] = time.perf_counter() - t0 + (feature_seconds if epoch == 0 else 0.0)
        result.history.append(rec)
        result.train_seconds += rec["seconds"]
        monitor_value = rec[cfg.monitor] if has_val else rec["train_loss"]
        improved, stop = stopper.step(monitor_value, epoch)
        if improved:
            best_state = {k_: v.detach().clone() for k_, v in model.state_dict().items()}
        if sched is not None:
            sched.step(monitor_value) if cfg.schedule == "plateau" else sched.step()
        if on_epoch is not None:
            on_epoch(rec)
        stop = stop and cfg.early_stopping
        if checkpoint is not None:
            _save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None,
                "stopper": stopper.state_dict(), "gen": gen.get_state(), "aug_gen": aug_gen.get_state(),
                "torch_rng": torch.get_rng_state(), "history": result.history, "best_state": best_state,
                "epoch": epoch if not stop else cfg.epochs - 1,
                "frozen": model.backbone_frozen if model.has_backbone else None})
        if stop:
            result.stopped_early = True
            break
    result.best_epoch = stopper.best_epoch + 1
    if cfg.restore_best and best_state is not None and (cfg.early_stopping or has_val):
        model.load_state_dict(best_state)
    return result


def _apply_freeze(model: FERModel, cfg: TrainConfig, epoch: int) -> None:
    """Freeze schedule: backbone frozen before ``freeze_epochs``, then top N blocks (or all) trainable."""
    if epoch < cfg.freeze_epochs:
        model.freeze_backbone(True)
    elif cfg.unfreeze_top < 0:
        model.freeze_backbone(False)
    else:
        model.unfreeze_top(cfg.unfreeze_top)


@torch.inference_mode()
def measure_inference(model: FERModel, device: torch.device, batch_size: int = 64, iters: int = 10,
                      warmup: int = 3) -> dict:
    """Inference speed on random 48x48 inputs at ``batch_size``: ms per image and images/s."""
    model.eval().to(device)
    x = torch.rand(batch_size, 1, 48, 48, device=device)
    for _ in range(warmup):
        model(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        model(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / (iters * batch_size)
    return {"batch_size": batch_size, "ms_per_image": dt * 1000, "images_per_second": 1 / dt}
