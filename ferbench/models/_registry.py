"""A timm-style registry: ``@register_model`` on a builder, ``create_model(name, ...)`` as the one door in."""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from .adapter import FERModel, InputSpec


@dataclass(frozen=True)
class ModelInfo:
    name: str
    study: str  # short name of the source study (see shared/papers/README.md)
    paper: str  # where in the paper the architecture is described
    input: InputSpec
    pretrained: bool = False  # whether the architecture starts from ImageNet weights by default
    notes: str = ""
    weights: str | None = None  # "torchvision:<WeightsEnum>.<member>" or "timm:<model name>"
    keras_kernel_init: str = "glorot_uniform"  # the Keras initializer the paper names (keras_defaults)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input"] = self.input.describe()
        return d


_REGISTRY: dict[str, tuple[ModelInfo, Callable[..., nn.Module]]] = {}


def register_model(info: ModelInfo):
    def deco(fn: Callable[..., nn.Module]):
        if info.name in _REGISTRY:
            raise ValueError(f"model {info.name!r} registered twice")
        _REGISTRY[info.name] = (info, fn)
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, list_models(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}"


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise KeyError(unknown_model_message(name))
    return _REGISTRY[name][0]


def create_model(name: str, num_classes: int = 7, *, pretrained: bool | None = None,
                 weights: str | None = None, keras_defaults: bool = False, **kwargs) -> FERModel:
    """Build registered model ``name`` wrapped with its declared input adaptation.

    ``pretrained`` defaults to the architecture's own default; ``weights`` names a local ImageNet
    weight file. Missing pretrained weights raise :class:`ferbench.errors.WeightsUnavailable`.
    ``keras_defaults`` gives the layers Keras' initializers and BatchNorm momentum/epsilon (for the
    studies written in Keras; pretrained weights are kept).
    """
    info = model_info(name)
    builder = _REGISTRY[name][1]
    if info.pretrained:
        kwargs["pretrained"] = info.pretrained if pretrained is None else pretrained
        kwargs["weights"] = weights
    elif pretrained:
        raise ValueError(f"model {name!r} has no pretrained weights; remove 'pretrained: true'")
    net = builder(num_classes=num_classes, **kwargs)
    model = FERModel(net, info.input, name=name, num_classes=num_classes)
    if keras_defaults:
        from .keras import apply_keras_defaults

        # An ImageNet backbone keeps its own initialization and normalization; only new layers change.
        skip = [net.backbone] if kwargs.get("pretrained") and model.has_backbone else []
        apply_keras_defaults(net, kernel_init=info.keras_kernel_init, skip=skip)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def describe_models() -> list[dict]:
    """One row per registered model for `ferbench models` (parameters counted on a built instance)."""
    rows = []
    for name in list_models():
        info, builder = _REGISTRY[name]
        kw = {"pretrained": False, "weights": None} if info.pretrained else {}
        net = builder(num_classes=3 if info.study == "three_class" else 7, **kw)
        row = {**info.as_dict(), "parameters": count_parameters(net)}
        if info.weights:
            from .pretrained import weights_status

            row["weights_status"] = weights_status(info.weights)
        rows.append(row)
    return rows
