"""One training/evaluation loop for every model.

The training set lives on the device as one uint8 tensor; a batch is an index slice, augmented on
the device in one warp (:mod:`ferbench.augment`) and adapted to the model's input spec inside the
model. Optimizers: Adam/AdamW/SGD; schedules: ReduceLROnPlateau or cosine; early stopping with
restore-best; class weights; label smoothing; freeze/unfreeze for transfer models; bf16/fp16
autocast where the device has it; a checkpoint every epoch so a killed run resumes.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment_batch
from .schema.train import AugmentConfig, TrainConfig  # noqa: F401 - re-exported
from .models import FERModel
from .models.adapter import image_batch
from .models.keras import KERAS_ADAM_EPS, keras_plateau_kwargs

# Subnormal floats (|x| < 1.2e-38) turn up in gradients within the first epoch; every operation on
# one costs an x86 CPU a microcode assist, and convolution backward then runs 10-100x slower (deep_cnn:
# 7.8 s instead of 0.4 s per step on one core). Flush them to zero, as TensorFlow's executor does.
# Set at import, before torch starts its OpenMP threads: set after that, the slowdown stayed (measured).
torch.set_flush_denormal(True)


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


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels: CUDA and MPS launch asynchronously, so a timing without
    this measures the launches, not the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cuda_bf16_is_native(device: torch.device | None = None) -> bool:
    """bf16 tensor cores exist from Ampere (compute capability 8.0) on. ``torch.cuda.is_bf16_supported()``
    also says True on a T4 or V100, where bf16 is emulated and slower than fp16."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def has_recurrent_layer(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.RNNBase) for m in model.modules())


def cpu_bf16_is_fast() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles: Xeon Sapphire Rapids and later). There,
    bf16 autocast trains the convnets here 1.2-2.9x faster (measured, 2 cores); without AMX it is slower
    than fp32, so ``amp: auto`` stays fp32. ``FERBENCH_CPU_BF16=0`` keeps fp32 anyway (the test suite
    sets it, so its numbers do not depend on the CPU it runs on); results record what was used."""
    if os.environ.get("FERBENCH_CPU_BF16", "1") == "0":
        return False
    caps = getattr(torch.cpu, "get_capabilities", lambda: {})()
    return bool(caps.get("amx_bf16"))


def amp_dtype(cfg: TrainConfig, device: torch.device, model_name: str | None = None) -> torch.dtype | None:
    """The autocast dtype of training steps, per-epoch validation and the final evaluation (a model is
    scored in the precision it was trained in). ``auto``: bf16 on Ampere and later GPUs, fp16 (with loss
    scaling) on older ones; bf16 on AMX CPUs unless the model's registry entry says bf16 is slower for it
    there; fp32 elsewhere (MPS included)."""
    if cfg.amp == "off":
        return None
    if cfg.amp == "fp16":
        return torch.float16
    if cfg.amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if cuda_bf16_is_native(device) else torch.float16
    if device.type == "cpu" and cpu_bf16_is_fast() and _cpu_bf16_allowed(model_name):
        return torch.bfloat16
    return None


def model_amp_dtype(cfg: TrainConfig, device: torch.device, model: torch.nn.Module) -> torch.dtype | None:
    """:func:`amp_dtype` for a built model. cuDNN's LSTM/GRU casts itself to fp16 under *any* CUDA
    autocast (torch's ``_cudnn_rnn`` autocast rule), so bf16 would record one precision and run another
    without loss scaling: ``auto`` takes fp16 with a GradScaler there, an explicit ``bf16`` is refused."""
    dtype = amp_dtype(cfg, device, getattr(model, "name", None))
    if device.type == "cuda" and dtype == torch.bfloat16 and has_recurrent_layer(model):
        if cfg.amp == "bf16":
            raise ValueError("amp: bf16 cannot hold for a recurrent model on CUDA: cuDNN runs LSTM/GRU layers in fp16 "
                             "under any autocast; use amp: fp16 (loss-scaled) or amp: off")
        return torch.float16
    return dtype


def dtype_name(dtype: torch.dtype | None) -> str | None:
    """'bfloat16' for torch.bfloat16; None (fp32, no autocast) stays None."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


def dtype_from_name(name: str | None) -> torch.dtype | None:
    """The inverse of :func:`dtype_name` for what results record: 'bfloat16' / 'float16'; anything else
    (None: fp32; 'unknown': a result written before ferbench recorded it) is fp32."""
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(name)


def _cpu_bf16_allowed(model_name: str | None) -> bool:
    from .models import list_models, model_info

    return model_name not in list_models() or model_info(model_name).cpu_bf16


C_COMPILERS = ("cc", "gcc", "clang")


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot run on ``device`` (None: it can). On CPU, inductor needs a C++ compiler;
    on CUDA it generates Triton kernels, and Triton builds its launcher with a C compiler at run time
    ($CC, else cc/gcc/clang on PATH); on MPS ferbench has never verified it."""
    if device.type == "mps":
        return "torch.compile on MPS is not verified by ferbench (inductor's Metal backend is experimental)"
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("triton") is None:
            return "torch.compile on CUDA needs Triton, which is not installed (pip install triton)"
        cc = os.environ.get("CC")
        if not any(shutil.which(c) for c in ([cc] if cc else []) + list(C_COMPILERS)):
            return ("torch.compile on CUDA needs a C compiler for Triton's launcher and none is on PATH "
                    "(install gcc, or set CC)")
        return None
    if device.type != "cpu":
        return None
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        cxx = get_cpp_compiler()
    except Exception as exc:  # private API: any failure means inductor would fail too
        return f"torch.compile's CPU backend found no C++ compiler ({type(exc).__name__}: {exc})"
    return None if shutil.which(cxx) else f"torch.compile's CPU backend needs a C++ compiler and {cxx!r} is not installed"


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


class CheckpointUnusable(Exception):
    """A checkpoint that loads (weights only) but cannot be resumed from: not this model's state."""


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    reported_epoch: int = -1  # the epoch whose weights the model holds after fit
    stopped_early: bool = False
    train_seconds: float = 0.0
    feature_cache_used: bool = False
    resumed_from_epoch: int | None = None
    checkpoint_discarded: str | None = None
    autocast: str | None = None  # 'bfloat16' / 'float16' when training steps ran under autocast
    compile_skipped: str | None = None  # why compile: true could not be honoured here (trained eagerly)
    bn_momentum_replaced: list[float] = field(default_factory=list)  # the BN momenta cfg.bn_momentum overrode


def to_device_images(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W) gray or (N, H, W, 3) RGB numpy -> uint8 (N, C, H, W) tensor resident on ``device``."""
    return image_batch(images).to(device)


def _as_float(xb: torch.Tensor) -> torch.Tensor:
    return xb.float().div_(255)


def prepare_model(model: FERModel, cfg: TrainConfig, device: torch.device) -> FERModel:
    """Device, input size and memory format: everything fit() does to a model before training."""
    model.to(device)
    if cfg.input_size:
        model.set_input_size(cfg.input_size)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    model.adapter.channels_last = cfg.channels_last
    apply_determinism(cfg.deterministic, device)
    return model


def apply_determinism(deterministic: bool, device: torch.device) -> None:
    """``deterministic: true``: torch's deterministic algorithms (ops without one warn, see docs/gpu.md),
    cuDNN's deterministic kernels without autotuning, cuBLAS' fixed workspace. Otherwise cuDNN autotunes
    (fixed batch shapes: it picks its fastest kernels, which may differ from run to run)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts a handle
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic


def set_bn_momentum(model: torch.nn.Module, momentum: float) -> list[float]:
    """Give every BatchNorm layer this running-statistics momentum; the distinct momenta it replaced."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    old = sorted({m.momentum for m in bns if m.momentum != momentum}, key=lambda v: (v is None, v or 0.0))
    for m in bns:
        m.momentum = momentum
    return old


def training_batch(x: torch.Tensor, idx: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The hot path of one batch: index slice of the device-resident uint8 set, one batched warp."""
    xb = augment_batch(_as_float(x[idx]), cfg.augment, gen)
    return xb.contiguous(memory_format=torch.channels_last) if cfg.channels_last else xb


def build_optimizer(model: FERModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Head (or the whole network) at ``lr``; an unfrozen backbone of a freeze schedule at a lower LR."""
    groups = [{"params": model.head_parameters(), "lr": cfg.lr}]
    if model.has_backbone and (cfg.freeze_epochs > 0 or not model.backbone_frozen):
        factor = cfg.unfreeze_lr_factor if cfg.freeze_epochs > 0 else 1.0
        groups.append({"params": model.backbone_parameters(), "lr": cfg.lr * factor})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=KERAS_ADAM_EPS if cfg.keras_defaults else 1e-8)


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, has_val: bool):
    """The learning-rate schedule a TrainConfig asks for, or None; plateau watches ``plateau_monitor``
    ('same': the early-stopping metric), which falls back to the training loss without a validation set."""
    if cfg.schedule == "plateau":
        watched = plateau_metric(cfg, has_val)
        if cfg.keras_defaults:  # Keras cuts after `patience` flat epochs, with an absolute min_delta
            return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **keras_plateau_kwargs(
                monitor=watched, factor=cfg.plateau_factor, patience=max(cfg.plateau_patience, 1), min_lr=cfg.min_lr))
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max" if watched.endswith("accuracy") else "min", factor=cfg.plateau_factor,
            patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.min_lr)
    return None


def plateau_metric(cfg: TrainConfig, has_val: bool) -> str:
    if not has_val:
        return "train_loss"
    return cfg.monitor if cfg.plateau_monitor == "same" else cfg.plateau_monitor


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


def to_probabilities(scores: torch.Tensor, outputs: str = "logits") -> torch.Tensor:
    """Class probabilities from a model's outputs: softmax of logits (and of log-probabilities, which
    renormalizes a class subset); probabilities are only renormalized, never softmaxed again."""
    if outputs == "probabilities":
        return scores / scores.sum(1, keepdim=True).clamp_min(1e-12)
    return torch.softmax(scores, 1)


def predict_proba(model: FERModel, images: np.ndarray, device: torch.device, batch: int = 512,
                  amp: torch.dtype | None = None, tta: str = "none", tta_crop: int = 40,
                  tta_mean: str = "probabilities") -> np.ndarray:
    """Class probabilities (N, k) for uint8 images (N, 48, 48); with ``tta`` averaged over the views
    of :mod:`ferbench.tta`."""
    from .tta import average, views

    model.eval()
    x = to_device_images(images, device)
    outputs = getattr(model, "outputs", "logits")
    per_view = [_forward_batches(lambda xb, v=v: model(v(xb)), x, batch, amp, device)
                for v in views(tta, x.shape[-2], x.shape[-1], tta_crop)]
    return average(per_view, lambda s: to_probabilities(s, outputs), tta_mean).cpu().numpy()


def _evaluate(fn, x, y, batch, dtype, device, weight=None) -> tuple[float, float]:
    logits = _forward_batches(fn, x, batch, dtype, device)
    loss = F.cross_entropy(logits, y, weight=weight).item()
    acc = (logits.argmax(1) == y).float().mean().item()
    return loss, acc


def device_rng_state(device: torch.device) -> torch.Tensor | None:
    """The default generator of ``device`` (dropout and random init on a GPU draw from it, not from the
    CPU's), as the CPU ByteTensor torch returns; None on the CPU (saved as ``torch_rng``)."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def set_device_rng_state(device: torch.device, state: torch.Tensor | None) -> None:
    if state is None:
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(state.cpu(), device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state.cpu())


def frozen_for_good(model: FERModel, cfg: TrainConfig) -> bool:
    """The backbone stays frozen the whole run: its weights are the ones the model was built with, so a
    checkpoint and the best-epoch snapshot need only the rest (ResNet-50: 94 MB less per copy)."""
    return model.backbone_frozen and cfg.freeze_epochs == 0


def trained_state(model: FERModel, cfg: TrainConfig) -> dict:
    """The model's state dict, less a backbone frozen for good."""
    state = model.state_dict()
    if frozen_for_good(model, cfg):
        state = {k: v for k, v in state.items() if not k.startswith("net.backbone.")}
    return state


def load_trained_state(model: FERModel, state: dict) -> None:
    """Load what :func:`trained_state` kept; any key missing besides the frozen backbone's is an error."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("net.backbone.")] + list(unexpected)
    if bad:
        raise RuntimeError(f"checkpoint does not fit the model: {', '.join(bad[:5])}")


class _Loop:
    """The state of one fit: optimizer, schedule, early stopping, RNGs, history, best weights.
    ``state_dict`` holds only tensors and plain values, so a checkpoint loads with weights_only=True."""

    def __init__(self, model: FERModel, cfg: TrainConfig, device: torch.device, seed: int, has_val: bool,
                 autocast: str | None):
        self.model, self.cfg, self.has_val, self.device, self.autocast = model, cfg, has_val, device, autocast
        if cfg.freeze_epochs > 0 and model.has_backbone:
            model.freeze_backbone(True)
        self.opt = build_optimizer(model, cfg)
        self.sched = build_scheduler(self.opt, cfg, has_val)
        self.stopper = EarlyStopping(cfg.monitor if has_val else "train_loss", cfg.patience)
        self.gen = torch.Generator().manual_seed(seed)  # batch order (CPU: identical on every device)
        # Augmentation parameters too: drawn on the CPU, one seed gives the same warps on every device.
        self.aug_gen = torch.Generator().manual_seed(seed + 1)
        self.history: list[dict] = []
        self.best_state: dict | None = None
        self.next_epoch = 0

    def snapshot_best(self) -> None:
        self.best_state = {k: v.detach().clone() for k, v in trained_state(self.model, self.cfg).items()}

    def state_dict(self, last_epoch: int) -> dict:
        return {"model": trained_state(self.model, self.cfg), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else None,
                "stopper": self.stopper.state_dict(), "gen": self.gen.get_state(),
                "aug_gen": self.aug_gen.get_state(), "torch_rng": torch.get_rng_state(),
                "device_rng": device_rng_state(self.device), "device_type": self.device.type,
                "history": self.history, "best_state": self.best_state, "epoch": last_epoch,
                "frozen": self.model.backbone_frozen if self.model.has_backbone else None,
                "autocast": self.autocast}

    def resume(self, ck: dict) -> None:
        """Continue from a checkpoint loaded onto the CPU (RNG states must be CPU ByteTensors; the
        model and optimizer copy their tensors to the device themselves)."""
        # A checkpoint without the key predates amp: auto's bf16 on AMX CPUs: it autocast on CUDA only.
        saved = ck["autocast"] if "autocast" in ck else (self.autocast if self.device.type == "cuda" else None)
        if saved != self.autocast:  # resuming would mix precisions under one recorded one
            raise ValueError(f"it was trained under {saved or 'fp32'} and this run trains under "
                             f"{self.autocast or 'fp32'}")
        load_trained_state(self.model, ck["model"])
        if self.cfg.freeze_epochs > 0 and self.model.has_backbone:  # a freeze schedule; a backbone frozen
            apply_freeze(self.model, self.cfg, ck["epoch"] + 1)  # for good stays frozen (apply_freeze would thaw it)
        self.opt = build_optimizer(self.model, self.cfg)  # parameter groups follow the freeze state
        self.opt.load_state_dict(ck["optimizer"])  # moves its state to the parameters' device
        if self.sched is not None and ck.get("scheduler"):
            self.sched = build_scheduler(self.opt, self.cfg, self.has_val)
            self.sched.load_state_dict(ck["scheduler"])
        self.stopper.load_state_dict(ck["stopper"])
        self.gen.set_state(ck["gen"].cpu())
        self.aug_gen.set_state(ck["aug_gen"].cpu())
        torch.set_rng_state(ck["torch_rng"].cpu())
        if ck.get("device_type") == self.device.type:  # another device's generator state does not apply
            set_device_rng_state(self.device, ck.get("device_rng"))
        self.history, self.best_state = ck["history"], ck["best_state"]
        self.next_epoch = ck["epoch"] + 1


def _training_inputs(model: FERModel, cfg: TrainConfig, x_tr, x_va, dtype, device):
    """(x_train, x_val, step_fn, eval_fn, feature_seconds). A frozen backbone without augmentation
    always maps an image to the same features: compute them once and train the head on them."""
    use_cache = cfg.feature_cache and model.backbone_frozen and cfg.freeze_epochs == 0 and not cfg.augment.active
    if not use_cache:
        return x_tr, x_va, model, model, 0.0, False
    t0 = time.perf_counter()
    model.eval()
    feats = lambda x: _forward_batches(model.features, x, cfg.eval_batch_size, dtype, device)  # noqa: E731
    x_tr, x_va = feats(x_tr), (feats(x_va) if x_va is not None else None)
    return x_tr, x_va, model.classify, model.classify, time.perf_counter() - t0, True


def _train_epoch(loop: _Loop, step_fn, x_tr, y_tr, use_cache: bool, dtype, scaler, weight, device,
                 on_batch, soft: torch.Tensor | None = None) -> dict:
    cfg, model = loop.cfg, loop.model
    model.train()
    n = len(x_tr)
    steps = math.ceil(n / cfg.batch_size)
    perm = torch.randperm(n, generator=loop.gen).to(device)
    tot_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for s in range(steps):
        idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
        yb = y_tr[idx]
        xb = x_tr[idx] if use_cache else training_batch(x_tr, idx, cfg, loop.aug_gen)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = step_fn(xb)
            target = yb if soft is None else soft[idx]  # class probabilities: torch's soft-target cross-entropy
            loss = F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=cfg.label_smoothing)
        loop.opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(loop.opt)
        scaler.update()
        tot_loss += loss.detach() * len(idx)
        correct += (logits.argmax(1) == yb).sum()
        if on_batch is not None:
            on_batch(s + 1, steps, loss.item() if (s + 1) % 20 == 0 or s + 1 == steps else float("nan"))
    return {"train_loss": tot_loss.item() / n, "train_accuracy": correct.item() / n,
            "lr": loop.opt.param_groups[0]["lr"]}


class FullBatchCompiled:
    """``torch.compile`` for the batches of one size; the last, partial batch runs eagerly (the same math).
    Without this, training's partial batch and evaluation each recompiled, even with dynamic shapes (a
    convolution guards on the batch size), and that time landed in epoch 1 and in no estimate."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], batch: int):
        self.eager, self.compiled, self.batch = fn, torch.compile(fn, dynamic=False), batch

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.compiled(x) if len(x) == self.batch else self.eager(x)


def fit(model: FERModel, train_images: np.ndarray, train_labels: np.ndarray,
        val_images: np.ndarray | None, val_labels: np.ndarray | None, cfg: TrainConfig, *,
        device: torch.device, seed: int = 0, checkpoint=None,
        on_epoch: Callable[[dict], None] | None = None,
        on_batch: Callable[[int, int, float], None] | None = None,
        train_soft: np.ndarray | None = None) -> FitResult:
    """Train ``model`` in place; returns the history. ``train_soft``: (N, classes) label distributions the
    training loss is taken on instead of ``train_labels`` (which still give train_accuracy). With ``checkpoint`` (a
    :class:`ferbench.store.Checkpoint`), every epoch is saved there and an existing checkpoint is
    resumed from (its epoch, optimizer, schedule, RNG); an unreadable one restarts training."""
    seed_everything(seed)
    prepare_model(model, cfg, device)
    dtype = model_amp_dtype(cfg, device, model)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    weight = torch.tensor(balanced_class_weights(train_labels, model.num_classes), dtype=torch.float32,
                          device=device) if cfg.class_weights else None
    x_tr, y_tr = to_device_images(train_images, device), torch.from_numpy(train_labels).to(device)
    soft = torch.from_numpy(np.asarray(train_soft, dtype=np.float32)).to(device) if train_soft is not None else None
    has_val = val_images is not None and len(val_images) > 0
    x_va = to_device_images(val_images, device) if has_val else None
    y_va = torch.from_numpy(val_labels).to(device) if has_val else None

    loop = _Loop(model, cfg, device, seed, has_val, dtype_name(dtype))
    result = FitResult(autocast=loop.autocast)
    if cfg.bn_momentum is not None:
        result.bn_momentum_replaced = set_bn_momentum(model, cfg.bn_momentum)
    if checkpoint is not None:
        ck = checkpoint.load(map_location="cpu")  # RNG states must stay CPU tensors (set_state refuses others)
        result.checkpoint_discarded = checkpoint.discarded
        if ck is not None:
            try:
                loop.resume(ck)
            except Exception as exc:  # a failed resume has half-changed the model: the caller starts over
                checkpoint.discard(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
                raise CheckpointUnusable(checkpoint.discarded) from None
            result.resumed_from_epoch = loop.next_epoch
    result.history = loop.history
    result.train_seconds = sum(h["seconds"] for h in loop.history)

    x_tr, x_va, step_fn, eval_fn, feature_seconds, use_cache = _training_inputs(model, cfg, x_tr, x_va, dtype, device)
    result.feature_cache_used = use_cache
    if cfg.compile:  # fuses memory-bound ops (CBAM's gating: 1.8x on CPU); the first steps pay the compile time
        result.compile_skipped = compile_unavailable(device)
        if result.compile_skipped is None:
            step_fn, eval_fn = FullBatchCompiled(step_fn, cfg.batch_size), FullBatchCompiled(eval_fn, cfg.eval_batch_size)

    watched = plateau_metric(cfg, has_val)
    for epoch in range(loop.next_epoch, cfg.epochs):
        if cfg.freeze_epochs > 0 and model.has_backbone and epoch == cfg.freeze_epochs:
            apply_freeze(model, cfg, epoch)
        t0 = time.perf_counter()
        rec = {"epoch": epoch + 1, **_train_epoch(loop, step_fn, x_tr, y_tr, use_cache, dtype, scaler, weight,
                                                  device, on_batch, soft)}
        if has_val:
            model.eval()
            rec["val_loss"], rec["val_accuracy"] = _evaluate(eval_fn, x_va, y_va, cfg.eval_batch_size, dtype,
                                                             device, weight)
        rec["seconds"] = time.perf_counter() - t0 + (feature_seconds if epoch == loop.next_epoch else 0.0)
        loop.history.append(rec)
        result.train_seconds += rec["seconds"]
        improved, stop = loop.stopper.step(rec[cfg.monitor] if has_val else rec["train_loss"], epoch)
        if improved:
            loop.snapshot_best()
        if loop.sched is not None:
            loop.sched.step(rec[watched]) if cfg.schedule == "plateau" else loop.sched.step()
        if on_epoch is not None:
            on_epoch(rec)
        stop = stop and cfg.early_stopping
        if checkpoint is not None:
            checkpoint.save(loop.state_dict(epoch if not stop else cfg.epochs - 1))
        if stop:
            result.stopped_early = True
            break
    result.best_epoch = loop.stopper.best_epoch + 1
    result.reported_epoch = len(loop.history)
    if cfg.restore_best and loop.best_state is not None and (cfg.early_stopping or has_val):
        load_trained_state(model, loop.best_state)
        result.reported_epoch = result.best_epoch
    return result


def apply_freeze(model: FERModel, cfg: TrainConfig, epoch: int) -> None:
    """Freeze schedule: backbone frozen before ``freeze_epochs``, then top N blocks (or all) trainable."""
    if epoch < cfg.freeze_epochs:
        model.freeze_backbone(True)
    elif cfg.unfreeze_top < 0:
        model.freeze_backbone(False)
    else:
        model.unfreeze_top(cfg.unfreeze_top)


# result.json's inference speed: warm-up and timed batches (read at call time: the test suite times fewer)
INFERENCE_WARMUP, INFERENCE_ITERS = 3, 10


@torch.inference_mode()
def measure_inference(model: FERModel, device: torch.device, batch_size: int = 64, iters: int | None = None,
                      warmup: int | None = None, amp: torch.dtype | None = None,
                      image_shape: tuple[int, ...] = (48, 48)) -> dict:
    """Inference speed on random inputs of ``image_shape`` (one image's: (H, W) gray or (H, W, 3) RGB, the
    study's) at ``batch_size`` (under ``amp`` autocast, as evaluated): ms per image and images/s, over
    ``iters`` batches after ``warmup`` (default :data:`INFERENCE_ITERS`, :data:`INFERENCE_WARMUP`)."""
    iters = INFERENCE_ITERS if iters is None else iters
    warmup = INFERENCE_WARMUP if warmup is None else warmup
    model.eval().to(device)
    h, w, *c = image_shape
    x = torch.rand(batch_size, c[0] if c else 1, h, w, device=device)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        for _ in range(warmup):
            model(x)
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            model(x)
    synchronize(device)
    dt = (time.perf_counter() - t0) / (iters * batch_size)
    return {"batch_size": batch_size, "ms_per_image": dt * 1000, "images_per_second": 1 / dt}
