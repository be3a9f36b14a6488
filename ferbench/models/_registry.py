"""A timm-style registry: ``@register_model`` on a builder, ``create_model(name, ...)`` as the one door in."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import unknown_name
from ._table import _REGISTRY, ModelInfo, register_model  # noqa: F401 - re-exported
from .adapter import FERModel, InputMismatch, InputSpec, check_study_input  # noqa: F401 - re-exported


def _load_families() -> None:
    """Importing the family modules registers their models (explicit, not `import *`)."""
    from . import augmented, cbam, comparative, khaireddin, llm_vs_nn, strong, three_class  # noqa: F401


def list_models() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


def unknown_model_message(name: str) -> str:
    return unknown_name("model", name, list_models())


def model_info(name: str) -> ModelInfo:
    from .timm_any import is_timm, timm_info

    if is_timm(name):
        return timm_info(name)
    _load_families()
    if name not in _REGISTRY:
        raise KeyError(unknown_model_message(name))
    return _REGISTRY[name][0]


def create_model(name: str, num_classes: int = 7, *, pretrained: bool | None = None,
                 weights: str | None = None, keras_defaults: bool = False, study_input=None, **kwargs) -> FERModel:
    """Build registered model ``name`` wrapped with its declared input adaptation.

    ``study_input`` (a :class:`ferbench.schema.study_input.StudyInput`, default 48 px gray): the images the
    study feeds it. A model registered with ``adapts_input`` gets ``in_chans`` and ``input_size`` from it;
    a 48x48 gray network refuses other inputs in one line (:class:`InputMismatch`); an RGB network takes
    any size (resized on the device).

    ``pretrained`` defaults to the architecture's own default; ``weights`` names a local ImageNet
    weight file. Missing pretrained weights raise :class:`ferbench.errors.WeightsUnavailable`.
    ``keras_defaults`` gives the layers Keras' initializers and BatchNorm momentum/epsilon (for the
    studies written in Keras; pretrained weights are kept).
    """
    info = model_info(name)
    from .timm_any import build_timm, is_timm

    size, channels = (study_input.size, study_input.channels) if study_input is not None else (48, 1)
    if is_timm(name):  # built for the study's declared input
        net, spec = build_timm(name, num_classes, pretrained=bool(pretrained), weights=weights, size=size,
                               channels=channels, **kwargs)
        model = FERModel(net, spec, name=name, num_classes=num_classes)
        if keras_defaults:
            raise ValueError(f"keras_defaults is for the studies written in Keras, not timm model {name!r}")
        return model
    builder = _REGISTRY[name][1]
    check_study_input(name, info.input, size, channels, info.adapts_input)
    spec = info.input
    if info.adapts_input:
        kwargs.update(in_chans=channels, input_size=size)
        spec = InputSpec(size, channels, spec.mean if len(spec.mean) == channels else spec.mean[:1] * channels,
                         spec.std if len(spec.std) == channels else spec.std[:1] * channels)
    if info.pretrained:
        kwargs["pretrained"] = info.pretrained if pretrained is None else pretrained
        kwargs["weights"] = weights
    elif pretrained:
        raise ValueError(f"model {name!r} has no pretrained weights; remove 'pretrained: true'")
    net = builder(num_classes=num_classes, **kwargs)
    model = FERModel(net, spec, name=name, num_classes=num_classes)
    if keras_defaults:
        from .keras import apply_keras_defaults

        # An ImageNet backbone keeps its own initialization and normalization; only new layers change.
        skip = [net.backbone] if kwargs.get("pretrained") and model.has_backbone else []
        apply_keras_defaults(net, kernel_init=info.keras_kernel_init, skip=skip)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, image_size: int = 48) -> int | None:
    """Floating-point operations of one forward pass on one (1, 1, size, size) image, as torch's
    FlopCounterMode counts them (matrix multiplies and convolutions, 2 per multiply-add); None where
    the model cannot be traced that way (e.g. a loaded ONNX session)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        device = next(iter(model.parameters())).device
        was = model.training
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 1, image_size, image_size, device=device))
        model.train(was)
        return int(counter.get_total_flops())
    except Exception:
        return None


def _built_facts(name: str) -> dict:
    """What `ferbench models` shows of ``name`` that only the code and library versions decide: its
    parameters (3 classes for the three-class study), counted on the ``meta`` device (shapes
    without storage or initialization), and the file its ImageNet weights come as."""
    info, builder = _REGISTRY[name]
    kw = {"pretrained": False, "weights": None} if info.pretrained else {}
    with torch.device("meta"):
        net = builder(num_classes=3 if info.study == "three_class" else 7, **kw)
    facts = {"parameters": count_parameters(net), "weights_source": None}
    if info.weights:
        from .pretrained import weights_source

        facts["weights_source"] = weights_source(info.weights)
    return facts


def registry_catalog() -> dict[str, dict]:
    """Every registered model as plain data for :mod:`.catalog`: its ModelInfo, the input spec, the
    parameters and the file its ImageNet weights come as."""
    from dataclasses import asdict as _asdict

    return {n: {**_REGISTRY[n][0].as_dict(), "input_spec": _asdict(_REGISTRY[n][0].input), **_built_facts(n)}
            for n in list_models()}
