"""Training settings: the ``train:`` blocks of a suite (suite ``defaults``, study, experiment, profile)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..limits import MAX_EPOCHS


class AugmentConfig(BaseModel):
    """On-device augmentation of each training batch (see :mod:`ferbench.augment`)."""
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rotation: float = Field(0.0, ge=0, le=180)  # max degrees, uniform in [-r, r]
    shift: float = Field(0.0, ge=0, le=1)  # max fraction of width/height
    zoom: float = Field(0.0, ge=0, lt=1)  # Keras zoom_range: width and height scale each uniform in [1-z, 1+z]
    shear: float = Field(0.0, ge=0, lt=90)  # max shear angle in degrees (Keras' shear_range unit)
    flip: bool = False  # horizontal flip with p = 0.5
    crop_scale: tuple[float, float] | None = None  # random resized crop: area fraction range
    # A random crop of this many pixels at the image's own scale, after the warp (the batch comes out
    # crop x crop; the model's input adapter resizes if its size differs), as torchvision's RandomCrop.
    crop: int | None = Field(None, gt=0, le=1024)
    # Random erasing with this probability per image: one rectangle of 2-33 % of the area, aspect 0.3-3.3,
    # set to 0 (torchvision's RandomErasing defaults), after the crop.
    erase: float = Field(0.0, ge=0, le=1)

    @property
    def active(self) -> bool:
        return bool(self.rotation or self.shift or self.zoom or self.shear or self.flip or self.crop_scale
                    or self.crop or self.erase)


class TrainConfig(BaseModel):
    """Training settings of one experiment (the suite's ``train:`` block)."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no NaN or inf, even where no range is given

    epochs: int = Field(10, gt=0, le=MAX_EPOCHS)
    batch_size: int = Field(64, gt=0, le=65_536)
    eval_batch_size: int = Field(512, gt=0, le=65_536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)  # L2 penalty (the CBAM study's regularizer)
    momentum: float = 0.9
    nesterov: bool = False  # SGD with Nesterov momentum
    schedule: Literal["none", "plateau", "cosine"] = "none"
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(7, ge=0)
    plateau_monitor: Literal["same", "val_loss", "val_accuracy"] = "same"  # 'same': what early stopping watches
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
    input_size: int | None = Field(None, gt=0, le=1024)  # override the model's input size (CPU profiles)
    channels_last: bool = True  # NHWC convolutions: +14-36 % training throughput measured on CPU
    compile: bool = False
    # Deterministic algorithms and cuDNN kernels (no autotuning): the same seed gives the same numbers on
    # the same device and software; slower on GPUs. What stays different across devices: docs/gpu.md.
    deterministic: bool = False
    # The study was written in Keras: Keras' layer initializers and BatchNorm momentum/epsilon
    # (pretrained backbones keep theirs), Adam epsilon 1e-7 and Keras' ReduceLROnPlateau timing.
    keras_defaults: bool = False
    # Per-epoch validation (what early stopping, the LR schedule, restore-best and the curves watch) on a
    # fixed stratified subset of at most this many images per class; final metrics use the full sets.
    monitor_per_class: int | None = Field(None, gt=0)
    # BatchNorm running-statistics momentum for every BN layer (torch's convention: the new batch's weight);
    # None: the model's own (Keras' 0.99 is 0.01 here). Training steps normalize with batch statistics, so
    # this changes only what evaluation sees: a short run's 0.01 average still remembers its initialisation.
    bn_momentum: float | None = Field(None, gt=0, le=1)
    # Cross-entropy on the training images' label distributions (FER+'s annotator votes) instead of their hard
    # labels, as FER+'s paper trains; validation and test metrics stay on the hard (majority) labels.
    soft_labels: bool = False
    # Test-time augmentation of the final val/test evaluation (per-epoch monitoring stays single-view):
    # 'flip' averages the image and its mirror, 'tencrop' the 4 corner + centre crops of tta_crop pixels
    # and their mirrors; tta_mean averages the views' probabilities or their outputs (logits).
    tta: Literal["none", "flip", "tencrop"] = "none"
    tta_crop: int = Field(40, gt=0, le=1024)
    tta_mean: Literal["probabilities", "logits"] = "probabilities"
