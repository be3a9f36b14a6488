"""Finding ImageNet weights without surprises: one lookup for every weight source.

Looked at, in order: the suite's ``weights:`` file, ``$FERBENCH_WEIGHTS/<file>``, torch's hub cache
(``$TORCH_HOME/hub/checkpoints/<file>``) and, for timm models, the Hugging Face cache; then a
download unless offline (``FERBENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``). Whatever fails ends in
:class:`WeightsUnavailable` naming the exact file and where to put it: a model asked to be
pretrained is never silently trained from scratch.
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


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("FERBENCH_OFFLINE", "HF_HUB_OFFLINE"))


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
    where = "\n".join(f"    {p}" for p in looked)
    name = ref.file_name if ref.kind == "torchvision" else \
        f"{ref.file_name} (model.safetensors of the Hugging Face repository {ref.hub_id()}, renamed)"
    return WeightsUnavailable(
        f"ImageNet weights for {model} are not available ({why}). Looked in:\n{where}\n"
        f"  Place the file {name} in $FERBENCH_WEIGHTS or {hub_dir() / 'checkpoints'}, "
        f"name it with 'weights: PATH' in the suite, or set 'pretrained: false' to train from scratch "
        f"(the report will say so).")


def _fetch(model: str, ref: str, explicit: str | None, *, local, remote, unusable: str, offline_note: str,
           say_error: bool):
    """The one lookup order: a local file (``local(wref, path)``), else -- unless the suite named a file
    or the machine is offline -- a download (``remote(wref)``); every failure is WeightsUnavailable."""
    wref = WeightsRef.parse(ref)
    found, looked = lookup(wref, explicit)
    if found is not None:
        try:
            return local(wref, found)
        except Exception as exc:
            raise WeightsUnavailable(f"weights file {found} for {model} is {unusable}: {exc}") from None
    if explicit:
        raise _missing(model, wref, looked, f"the suite's weights file {explicit} does not exist")
    if offline():
        raise _missing(model, wref, looked, offline_note)
    try:
        return remote(wref)
    except Exception as exc:
        raise _missing(model, wref, looked, f"download failed: {type(exc).__name__}"
                       + (f": {exc}" if say_error else "")) from None


def torchvision_state_dict(model: str, ref: str, explicit: str | None = None) -> dict:
    """State dict for a torchvision weights reference, found locally or downloaded."""
    def local(wref, found):
        import torch

        return torch.load(found, map_location="cpu", weights_only=True)

    return _fetch(model, ref, explicit, local=local,
                  remote=lambda w: w.torchvision_weights().get_state_dict(progress=True), unusable="unreadable", offline_note="offline mode, nothing found locally", say_error=True)


def timm_pretrained(model: str, ref: str, num_classes: int, explicit: str | None = None, **kwargs):
    """A timm model with ImageNet weights (new head of ``num_classes``), or WeightsUnavailable."""
    import timm

    def local(wref, found):
        return timm.create_model(wref.name, pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"file": str(found)}, **kwargs)

    return _fetch(model, ref, explicit, local=local,
                  remote=lambda w: timm.create_model(w.name, pretrained=True, num_classes=num_classes, **kwargs),
                  unusable="unusable", offline_note="offline mode, not in the Hugging Face cache", say_error=False)


def weights_status(ref: str, explicit: str | None = None, source: dict | None = None) -> dict:
    """Where the weights named by ``ref`` are, for `ferbench models` (``source``: see :func:`lookup`)."""
    source = source or weights_source(ref)
    found, looked = lookup(WeightsRef.parse(ref), explicit, source)
    return {"file": source["file"], "available": found is not None, "found": str(found) if found else None,
            "looked": looked}
