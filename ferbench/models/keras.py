"""Keras' documented defaults for torch modules, for the studies that were written in Keras
(comparative: TensorFlow 2.10; three_class: TensorFlow 2.6; augmented: CNN, ResNet, MobileNetV2).

What differs between a Keras layer and the torch layer ferbench builds in its place:

- ``BatchNormalization(momentum=0.99, epsilon=0.001)`` (tf.keras.layers.BatchNormalization). Keras'
  momentum weighs the *old* running statistic, torch's weighs the *new* batch statistic, so Keras
  0.99 is torch ``momentum=0.01``; torch's default eps is 1e-5.
- ``Dense`` and ``Conv2D``: ``kernel_initializer='glorot_uniform'``, ``bias_initializer='zeros'``;
  torch's default is kaiming-uniform with a=sqrt(5) and a uniform bias. Glorot's fans agree between
  the two layouts: fan_in = k_h * k_w * c_in, fan_out = k_h * k_w * c_out.
- ``he_normal`` (named by three_class, section 3.3) is ``VarianceScaling(scale=2, mode='fan_in',
  distribution='truncated_normal')``: a normal cut at two standard deviations whose parameter is
  sqrt(2 / fan_in) / 0.87962566103423978, so that the *truncated* spread is sqrt(2 / fan_in);
  torch's ``kaiming_normal_`` is an untruncated normal.
- ``LSTM``: ``kernel_initializer='glorot_uniform'`` over the whole (input, 4 * units) kernel,
  ``recurrent_initializer='orthogonal'``, ``bias_initializer='zeros'`` with ``unit_forget_bias=True``
  (forget-gate bias 1). Keras has one bias vector, torch two (``bias_ih``, ``bias_hh``): the forget
  slice of ``bias_ih`` is set to 1 and ``bias_hh`` to 0, so their sum is Keras' bias. Gate order is
  input, forget, cell, output in both. ``GRU`` (Keras 2 default ``reset_after=True``, two biases as
  in torch): glorot-uniform kernel, orthogonal recurrent kernel, zero biases.
- ``Adam(epsilon=1e-7)`` (torch 1e-8): :data:`KERAS_ADAM_EPS`, for the engine.
- ``ReduceLROnPlateau`` cuts the learning rate once ``patience`` epochs in a row bring no
  improvement larger than ``min_delta=1e-4`` (absolute); torch's cuts after ``patience + 1`` such
  epochs with a relative threshold. :func:`keras_plateau_kwargs` gives torch's scheduler the Keras
  behaviour.

References: the TensorFlow API pages of tf.keras.layers.BatchNormalization, Dense, Conv2D, LSTM,
GRU, tf.keras.initializers.HeNormal / VarianceScaling, tf.keras.optimizers.Adam and
tf.keras.callbacks.ReduceLROnPlateau (TF 2.x).

Pretrained backbones keep their own initialization and normalization: pass them in ``skip``.
"""
from __future__ import annotations

import math
from typing import Iterable, Literal

import torch
from torch import nn

KERAS_BN_MOMENTUM = 0.01  # torch convention for Keras' momentum=0.99
KERAS_BN_EPS = 1e-3
KERAS_ADAM_EPS = 1e-7
KERAS_PLATEAU_MIN_DELTA = 1e-4
_TRUNC_STD_FACTOR = 0.87962566103423978  # std of a unit normal truncated at +-2 sd (Keras' constant)

KernelInit = Literal["glorot_uniform", "he_normal"]
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_KERNEL = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@torch.no_grad()
def he_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Keras' ``he_normal``: truncated normal (+-2 sd) with an overall spread of sqrt(2 / fan_in)."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    std = math.sqrt(2.0 / fan_in) / _TRUNC_STD_FACTOR
    return nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


@torch.no_grad()
def _init_kernel(m: nn.Module, kernel_init: KernelInit) -> None:
    if kernel_init == "he_normal":
        he_normal_(m.weight)
    else:
        nn.init.xavier_uniform_(m.weight)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


@torch.no_grad()
def _init_recurrent(m: nn.LSTM | nn.GRU) -> None:
    h = m.hidden_size
    for name, p in m.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(p)  # (gates * h, in): same fans as Keras' (in, gates * h) kernel
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(p)  # (gates * h, h): orthonormal columns = Keras' orthonormal rows, transposed
        elif name.startswith("bias"):
            nn.init.zeros_(p)
            if isinstance(m, nn.LSTM) and name.startswith("bias_ih"):
                p[h:2 * h] = 1.0  # unit_forget_bias


def apply_keras_defaults(module: nn.Module, *, init: bool = True, batchnorm: bool = True,
                         kernel_init: KernelInit = "glorot_uniform",
                         skip: Iterable[nn.Module] = ()) -> nn.Module:
    """Give ``module`` the defaults of the Keras layers it stands in for; returns ``module``.

    ``init`` re-initializes Conv/Linear (``kernel_init``, zero bias) and LSTM/GRU weights;
    ``batchnorm`` sets every BatchNorm to Keras' momentum and epsilon. Submodules in ``skip``
    (e.g. an ImageNet backbone) and everything inside them are left untouched.
    """
    if kernel_init not in ("glorot_uniform", "he_normal"):
        raise ValueError(f"kernel_init must be 'glorot_uniform' or 'he_normal'; got {kernel_init!r}")
    skipped = {id(s) for s in skip}
    stack = [module]
    while stack:
        m = stack.pop()
        if id(m) in skipped:
            continue
        if batchnorm and isinstance(m, _BN):
            m.momentum, m.eps = KERAS_BN_MOMENTUM, KERAS_BN_EPS
        elif init and isinstance(m, _KERNEL):
            _init_kernel(m, kernel_init)
        elif init and isinstance(m, (nn.LSTM, nn.GRU)):
            _init_recurrent(m)
        stack.extend(m.children())
    return module


def keras_plateau_kwargs(*, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                         min_lr: float = 0.0, min_delta: float = KERAS_PLATEAU_MIN_DELTA) -> dict:
    """Keyword arguments for ``torch.optim.lr_scheduler.ReduceLROnPlateau`` that cut the learning
    rate on the same epoch as Keras' ``ReduceLROnPlateau(monitor, factor, patience, min_lr,
    min_delta)`` (defaults are Keras' own)."""
    if patience < 1:
        raise ValueError(f"Keras ReduceLROnPlateau patience must be >= 1 here; got {patience}")
    return {"mode": "min" if "acc" not in monitor else "max", "factor": factor, "patience": patience - 1,
            "threshold": min_delta, "threshold_mode": "abs", "min_lr": min_lr, "cooldown": 0}
