"""Input specs and the wrapper that adapts FER's 48x48 grayscale batches to what a network expects.

Resizing (e.g. 48 -> 224), channel replication (1 -> 3) and normalization run on the device as
the first step of ``forward``, so no per-image Python preprocessing exists anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_batch(images) -> torch.Tensor:
    """uint8 numpy (N, H, W) gray or (N, H, W, 3) RGB -> uint8 tensor (N, C, H, W), what models take (as floats)."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


class InputMismatch(ValueError):
    """A study's images are not what a model can take (RGB for a gray network, 100 px for a 48-px one)."""


def check_study_input(name: str, spec: "InputSpec", size: int, channels: int, adapts: bool = False) -> None:
    """One line when a network cannot take a study's images: a 48x48 gray network has layers sized for
    exactly that; an RGB network (ImageNet style) takes any size, resized on the device, and gray replicated."""
    if adapts or (size, channels) == (48, 1):
        return
    if spec.channels == 1 and (channels != 1 or size != spec.size):
        raise InputMismatch(f"model {name!r} takes {spec.size}x{spec.size} gray images (its layers are sized for "
                            f"them); this study declares input {size}x{size} {'gray' if channels == 1 else 'RGB'}: "
                            f"use input {{size: {spec.size}, channels: 1}} for it, or a model that takes RGB images")


@dataclass(frozen=True)
class InputSpec:
    size: int = 48
    channels: int = 1
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def describe(self) -> str:
        if tuple(self.mean) == IMAGENET_MEAN and tuple(self.std) == IMAGENET_STD:
            norm = "ImageNet mean/std"
        elif len(set(self.mean)) == 1 and len(set(self.std)) == 1:
            m, s = self.mean[0], self.std[0]
            norm = "x/255" if (m, s) == (0.0, 1.0) else f"(x/255-{m:g})/{s:g}"
        else:
            norm = f"(x/255-{list(self.mean)})/{list(self.std)}"
        return f"{self.size}x{self.size}x{self.channels}, {norm}"

    def with_size(self, size: int) -> "InputSpec":
        return InputSpec(size, self.channels, self.mean, self.std)


class InputAdapter(nn.Module):
    def __init__(self, spec: InputSpec, channels_last: bool = False):
        super().__init__()
        self.spec = spec
        # The network runs channels-last (the engine's default): hand it NHWC. Replicating one channel to
        # three and normalizing would otherwise produce an NCHW tensor, and the first convolution would
        # convert it back on every batch.
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (N, 1, H, W) gray or (N, 3, H, W) RGB in [0, 1]."""
        if x.shape[1] > self.spec.channels:
            raise InputMismatch(f"the model takes {self.spec.channels}-channel images and was given "
                                f"{x.shape[1]}-channel ones; declare the study's input: {{channels: 1}}, or use a "
                                "model that takes RGB")
        if x.shape[-1] != self.spec.size or x.shape[-2] != self.spec.size:
            x = F.interpolate(x, size=(self.spec.size, self.spec.size), mode="bilinear", align_corners=False)
        if self.spec.channels != x.shape[1]:
            x = x.expand(-1, self.spec.channels, -1, -1)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class FERModel(nn.Module):
    """A network plus its input adaptation. ``forward`` takes float (N, 1, 48, 48) in [0, 1].

    Transfer networks (:class:`~ferbench.models.layers.TransferNet`) have a ``backbone`` and a
    ``head``; the engine trains them through the operations below (freeze, unfreeze the top
    blocks, features/classify for the frozen-feature cache) and never reaches into ``net``.
    """

    def __init__(self, net: nn.Module, spec: InputSpec, name: str = "", num_classes: int = 7):
        super().__init__()
        self.adapter = InputAdapter(spec)
        self.net = net
        self.name = name
        self.num_classes = num_classes
        self.outputs = "logits"  # what forward returns; loaded models may return (log-)probabilities

    @property
    def spec(self) -> InputSpec:
        return self.adapter.spec

    def set_input_size(self, size: int) -> None:
        """Run at another input size (e.g. a CPU profile's 64 px instead of 224 px)."""
        device = next(iter(self.net.parameters()), torch.zeros(0)).device
        self.adapter = InputAdapter(self.spec.with_size(size), self.adapter.channels_last).to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.adapter(x))

    # --- the parts of a transfer network ------------------------------------------------------------
    @property
    def has_backbone(self) -> bool:
        return hasattr(self.net, "backbone") and hasattr(self.net, "head")

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.net.backbone.parameters()) if self.has_backbone else []

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything that is not backbone (the whole network for models without one)."""
        backbone = set(map(id, self.backbone_parameters()))
        return [p for p in self.parameters() if id(p) not in backbone]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output for input batches (what the frozen-feature cache stores)."""
        return self.net.backbone(self.adapter(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.head(features)

    @property
    def backbone_frozen(self) -> bool:
        return self.has_backbone and not any(p.requires_grad for p in self.backbone_parameters())

    def freeze_backbone(self, frozen: bool = True) -> None:
        if not self.has_backbone:
            raise ValueError(f"model {self.name!r} has no backbone to freeze")
        for p in self.backbone_parameters():
            p.requires_grad = not frozen

    def unfreeze_top(self, n: int) -> None:
        """Unfreeze the last ``n`` blocks of the backbone (all others stay frozen)."""
        blocks = list(self.net.backbone_blocks()) if hasattr(self.net, "backbone_blocks") \
            else list(self.net.backbone.children())
        self.freeze_backbone(True)
        for block in blocks[len(blocks) - n:] if n > 0 else []:
            for p in block.parameters():
                p.requires_grad = True

    def train(self, mode: bool = True) -> "FERModel":
        super().train(mode)
        if mode and self.has_backbone:
            if self.backbone_frozen:
                # A fully frozen backbone runs in inference mode (BatchNorm statistics stay ImageNet's),
                # as Keras does for a base with trainable=False; this also keeps cached features valid.
                self.net.backbone.eval()
            else:
                # Keras runs a BatchNorm layer whose weights are frozen in inference mode even while
                # the rest trains (partial unfreezing): its moving statistics stay as loaded.
                for m in self.net.backbone.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None \
                            and not m.weight.requires_grad:
                        m.eval()
        return self
