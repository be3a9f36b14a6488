"""Finding ImageNet weights without surprises: one lookup for every weight source.

Looked at, in order: the suite's ``weights:`` file, ``$FERBENCH_WEIGHTS/<file>``, torch's hub cache
(``$TORCH_HOME/hub/checkpoints/<file>``) and, for timm models, the Hugging Face cache. Nothing is
ever downloaded at run time (a run must not depend on the network, nor change with what a server
hands out that day): a missing file ends in :class:`WeightsUnavailable`, one line naming the file,
the address it is usually downloaded from and where to put it. A model asked to be pretrained is
never silently trained from scratch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailable


def hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch when nothing has imported it yet (`ferbench models`
    stays fast): then no torch.hub.set_dir() can have run, and torch's rule is $TORCH_HOME/hub, else
    $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub."""
    import sys

    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


@dataclass(frozen=True)
class WeightsRef:
    """Where a registered model's ImageNet weights come from: ``torchvision:<Enum>.<MEMBER>`` or ``timm:<name>``."""
    kind: str  # torchvision | timm
    name: str  # "ResNet50_Weights.IMAGENET1K_V1" or the timm model name

    @classmethod
    def parse(cls, ref: str) -> "WeightsRef":
        kind, _, name = ref.partition(":")
        if kind not in ("torchvision", "timm") or not name:
            raise ValueError(f"weights reference {ref!r} must be 'torchvision:<Enum>.<MEMBER>' or 'timm:<model>'")
        return cls(kind, name)

    def torchvision_weights(self):
        import torchvision.models as tvm

        enum_name, member = self.name.split(".")
        return getattr(getattr(tvm, enum_name), member)

    @property
    def file_name(self) -> str:
        if self.kind == "torchvision":
            return Path(self.torchvision_weights().url).name
        return f"{self.name}.safetensors"

    def url(self, source: dict | None = None) -> str:
        """Where the file is usually downloaded from (by hand: ferbench never fetches it)."""
        if self.kind == "torchvision":
            return self.torchvision_weights().url
        hub_id = (source or {}).get("hf_hub_id") or self.hub_id()
        return f"https://huggingface.co/{hub_id}/resolve/main/model.safetensors"

    def hub_id(self) -> str:
        try:
            import timm

            return timm.models.get_pretrained_cfg(self.name).hf_hub_id or f"timm/{self.name}"
        except Exception:
            return f"timm/{self.name}"


def weights_source(ref: str) -> dict:
    """The file the weights named by ``ref`` come as, and the Hugging Face repo timm fetches them from.
    Imports torchvision or timm (seconds) and depends only on their versions: `ferbench models` remembers it."""
    wref = WeightsRef.parse(ref)
    return {"file": wref.file_name, "hf_hub_id": wref.hub_id() if wref.kind == "timm" else None}


def lookup(ref: WeightsRef, explicit: str | None = None, source: dict | None = None) -> tuple[Path | None, list[str]]:
    """(the local weight file, or None; every place looked, in order). ``source``: a remembered
    :func:`weights_source` answer, so the lookup imports neither torchvision nor timm."""
    file_name = source["file"] if source else ref.file_name
    hub_id = source.get("hf_hub_id") if source else (ref.hub_id() if ref.kind == "timm" else None)
    looked = [Path(explicit)] if explicit else []
    if os.environ.get("FERBENCH_WEIGHTS"):
        looked.append(Path(os.environ["FERBENCH_WEIGHTS"]) / file_name)
    looked.append(hub_dir() / "checkpoints" / file_name)
    found = next((p for p in looked if p.is_file()), None)
    places = [str(p) for p in looked]
    if found is None and hub_id and not explicit:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(hub_id, "model.safetensors")
            if isinstance(cached, str):
                found = Path(cached)
            places.append(cached if isinstance(cached, str) else f"<Hugging Face cache>/{hub_id}")
        except Exception:
            places.append(f"<Hugging Face cache>/{hub_id}")
    return found, places


def _missing(model: str, ref: WeightsRef, looked: list[str], why: str) -> WeightsUnavailable:
    """One line: the file, where it is usually obtained, where to put it, and every place looked."""
    renamed = ", saved under that name" if ref.kind == "timm" else ""
    return WeightsUnavailable(
        f"ImageNet weights for {model} are not available ({why}). Place the file {ref.file_name} (from "
        f"{ref.url()}{renamed}) in $FERBENCH_WEIGHTS or {hub_dir() / 'checkpoints'}, or name it with "
        f"'weights: PATH' in the suite, or set 'pretrained: false' to train from scratch (the report will say "
        f"so). Looked in: {'; '.join(looked)}")


def _local(model: str, ref: str, explicit: str | None, load, unusable: str):
    """The weights from a local file (``load(wref, path)``), never from the network; every failure is
    WeightsUnavailable."""
    wref = WeightsRef.parse(ref)
    found, looked = lookup(wref, explicit)
    if found is None:
        raise _missing(model, wref, looked, f"the suite's weights file {explicit} does not exist" if explicit
                       else "ferbench never downloads weights at run time")
    try:
        return load(wref, found)
    except Exception as exc:
        raise WeightsUnavailable(f"weights file {found} for {model} is {unusable}: {exc}") from None


def torchvision_state_dict(model: str, ref: str, explicit: str | None = None) -> dict:
    """State dict for a torchvision weights reference, from a local file."""
    def load(wref, found):
        import torch

        return torch.load(found, map_location="cpu", weights_only=True)

    return _local(model, ref, explicit, load, "unreadable")


def timm_pretrained(model: str, ref: str, num_classes: int, explicit: str | None = None, **kwargs):
    """A timm model with ImageNet weights from a local file (new head of ``num_classes``), or
    WeightsUnavailable. timm adapts the stem to ``in_chans`` and drops a head of another size itself."""
    import timm

    def load(wref, found):
        return timm.create_model(wref.name, pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"file": str(found)}, **kwargs)

    return _local(model, ref, explicit, load, "unusable")


def weights_status(ref: str, explicit: str | None = None, source: dict | None = None) -> dict:
    """Where the weights named by ``ref`` are, for `ferbench models` (``source``: see :func:`lookup`)."""
    source = source or weights_source(ref)
    found, looked = lookup(WeightsRef.parse(ref), explicit, source)
    return {"file": source["file"], "available": found is not None, "found": str(found) if found else None,
            "looked": looked}
