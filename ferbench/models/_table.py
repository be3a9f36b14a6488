"""The model table: what a family module registers (a model's :class:`ModelInfo` and builder).

Kept apart from :mod:`._registry`, which imports every family to fill this table, so that a family
importing ``register_model`` never imports its importer back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from torch import nn

from .adapter import InputSpec


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
    # The builder takes the study's input (``in_chans``, ``input_size`` keywords, e.g. a timm model) and the
    # model is fed that size and colour as they are; False: ``input`` is fixed and study inputs are checked.
    adapts_input: bool = False

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
