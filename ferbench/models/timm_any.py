"""Any timm architecture by name: ``model: {timm: resnet18}`` (internally ``timm:resnet18``).

The network is built by ``timm.create_model`` with ``in_chans`` and ``num_classes`` from the study and
trained by the same engine as every registered model. ImageNet weights come only from a local file
(:mod:`.pretrained`; ``pretrained: true`` with ``weights: PATH`` or ``$FERBENCH_WEIGHTS``), never
downloaded. The input is the study's declared images (``input: {size, channels}``; default 48 px, one
channel, x/255).
"""
from __future__ import annotations

from torch import nn

from ..errors import unknown_name
from .adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from ._table import ModelInfo

PREFIX = "timm:"
# timm.create_model options a suite may not pass through model_args: they would load files or
# change what the registry decided (weights come only through the lookup in .pretrained).
_RESERVED = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir",
             "num_classes", "in_chans", "features_only", "scriptable", "exportable")


def is_timm(name: str) -> bool:
    return name.startswith(PREFIX)


def arch_of(name: str) -> str:
    return name[len(PREFIX):]


def input_spec(pretrained: bool, size: int = 48, channels: int = 1) -> InputSpec:
    """What the network is fed: the study's size and channels (ImageNet's normalization when pretrained)."""
    if pretrained and channels == 1:
        # timm sums an RGB stem into one channel; the grey image is normalized as ImageNet's mean pixel
        return InputSpec(size, 1, (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,))
    if pretrained:
        return InputSpec(size, 3, IMAGENET_MEAN, IMAGENET_STD)
    return InputSpec(size, channels)


def timm_info(name: str) -> ModelInfo:
    arch = arch_of(name)
    return ModelInfo(name, "timm", f"timm {arch} (github.com/huggingface/pytorch-image-models)", input_spec(False),
                     pretrained=False, weights=f"timm:{arch}",
                     notes=f"timm.create_model('{arch}', in_chans, num_classes); ImageNet weights only from a local file")


def check_arch(arch: str) -> None:
    import timm

    if not arch or arch not in timm.list_models():
        raise KeyError(unknown_name("timm model", arch, timm.list_models()))


def timm_model_args(model_args: dict) -> dict:
    bad = sorted(k for k in model_args if k in _RESERVED)
    if bad:
        raise ValueError(f"model_args {', '.join(bad)} cannot be set for a timm model (ferbench decides them)")
    odd = sorted(k for k, v in model_args.items() if not isinstance(v, (int, float, bool, str, type(None))))
    if odd:
        raise ValueError(f"model_args {', '.join(odd)} of a timm model must be numbers, booleans or text")
    return model_args


def build_timm(name: str, num_classes: int, pretrained: bool = False, weights: str | None = None,
               size: int = 48, channels: int = 1, **model_args) -> tuple[nn.Module, InputSpec]:
    """(the timm network, the input spec its wrapper adapts FER batches to)."""
    import timm

    from .pretrained import timm_pretrained

    arch = arch_of(name)
    check_arch(arch)
    spec = input_spec(pretrained, size, channels)
    kw = dict(in_chans=spec.channels, **timm_model_args(model_args))
    if pretrained:
        return timm_pretrained(name, f"timm:{arch}", num_classes, weights, **kw), spec
    return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kw), spec


def list_timm(pattern: str) -> list[str]:
    import timm

    return timm.list_models(pattern)
