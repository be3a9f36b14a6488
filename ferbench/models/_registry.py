"""A timm-style registry: ``@register_model`` on a builder, ``create_model(name, ...)`` as the one door in."""
from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..atomic import atomic_write_json
from ..errors import DiskFullError, unknown_name
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
    cpu_bf16: bool = True  # amp: auto may train it under bf16 on AMX CPUs (False: measured slower there)

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
    return unknown_name("model", name, list_models())


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


def _facts_cache() -> Path:
    """One file per version of the model code and of the libraries that build models: a changed
    architecture or a new torchvision/timm never reads an old answer."""
    import importlib.metadata as md

    from .. import __version__
    from ..environment import cache_root

    h = hashlib.sha256(__version__.encode())
    for pkg in ("torch", "torchvision", "timm"):
        try:
            h.update(f"|{pkg}={md.version(pkg)}".encode())
        except md.PackageNotFoundError:
            h.update(f"|{pkg}=none".encode())
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return cache_root() / "models" / f"facts-{h.hexdigest()[:20]}.json"


def _valid_facts(v) -> bool:
    ws = v.get("weights_source") if isinstance(v, dict) else None
    return isinstance(v, dict) and type(v.get("parameters")) is int and v["parameters"] >= 0 and (
        ws is None or (isinstance(ws, dict) and isinstance(ws.get("file"), str)
                       and isinstance(ws.get("hf_hub_id"), (str, type(None)))))


def _model_facts(names: list[str]) -> dict[str, dict]:
    """_built_facts per model, built once per version (torchvision, timm and torch._dynamo cost
    seconds to import), then read from the cache. An unreadable or odd cache file is ignored."""
    path = _facts_cache()
    try:
        raw = json.loads(path.read_text()) if path.stat().st_size < 1_000_000 else {}
    except (OSError, ValueError):
        raw = {}
    known = {k: v for k, v in raw.items() if k in _REGISTRY and _valid_facts(v)} if isinstance(raw, dict) else {}
    missing = [n for n in names if n not in known]
    for n in missing:
        known[n] = _built_facts(n)
    if missing:
        try:
            atomic_write_json(path, dict(sorted(known.items())))
        except (OSError, DiskFullError):
            pass  # an unwritable cache folder only costs speed
    return {n: known[n] for n in names}


def describe_models(pattern: str | None = None) -> list[dict]:
    """One row per registered model (matching the glob ``pattern``, any case) for `ferbench models`."""
    names = [n for n in list_models() if pattern is None or fnmatch.fnmatchcase(n.lower(), pattern.lower())]
    facts = _model_facts(names)
    rows = []
    for name in names:
        info = _REGISTRY[name][0]
        row = {**info.as_dict(), "parameters": facts[name]["parameters"]}
        if info.weights:
            from .pretrained import weights_status

            row["weights_status"] = weights_status(info.weights, source=facts[name]["weights_source"])
        rows.append(row)
    return rows
