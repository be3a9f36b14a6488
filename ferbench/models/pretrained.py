"""Finding ImageNet weights without surprises.

Looked at, in order: the suite's ``weights:`` file, ``$FERBENCH_WEIGHTS/<file>``, torch's hub cache
(``$TORCH_HOME/hub/checkpoints/<file>``), then a download unless offline (``FERBENCH_OFFLINE=1`` or
``HF_HUB_OFFLINE=1``). Whatever fails ends in :class:`WeightsUnavailable` naming the exact file and
where to put it: a model asked to be pretrained is never silently trained from scratch.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import WeightsUnavailable


def offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("FERBENCH_OFFLINE", "HF_HUB_OFFLINE"))


def candidate_paths(file_name: str, explicit: str | None = None) -> list[Path]:
    paths = [Path(explicit)] if explicit else []
    if os.environ.get("FERBENCH_WEIGHTS"):
        paths.append(Path(os.environ["FERBENCH_WEIGHTS"]) / file_name)
    paths.append(Path(torch.hub.get_dir()) / "checkpoints" / file_name)
    return paths


def _missing(model: str, file_name: str, looked: list[Path], why: str) -> WeightsUnavailable:
    where = "\n".join(f"    {p}" for p in looked)
    return WeightsUnavailable(
        f"ImageNet weights for {model} are not available ({why}). Looked in:\n{where}\n"
        f"  Place the file {file_name} in $FERBENCH_WEIGHTS or {Path(torch.hub.get_dir()) / 'checkpoints'}, "
        f"name it with 'weights: PATH' in the suite, or set 'pretrained: false' to train from scratch "
        f"(the report will say so).")


def torchvision_state_dict(model: str, weights_enum, explicit: str | None = None) -> dict:
    """State dict for a torchvision ``WeightsEnum`` member, found locally or downloaded."""
    file_name = Path(weights_enum.url).name
    looked = candidate_paths(file_name, explicit)
    for p in looked:
        if p.is_file():
            try:
                return torch.load(p, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise WeightsUnavailable(f"weights file {p} for {model} is unreadable: {exc}") from None
    if explicit:
        raise _missing(model, file_name, looked, f"the suite's weights file {explicit} does not exist")
    if offline():
        raise _missing(model, file_name, looked, "offline mode, nothing found locally")
    try:
        return weights_enum.get_state_dict(progress=True)
    except Exception as exc:
        raise _missing(model, file_name, looked, f"download failed: {type(exc).__name__}: {exc}") from None


def timm_pretrained(model: str, timm_name: str, num_classes: int, explicit: str | None = None, **kwargs):
    """A timm model with ImageNet weights (new head of ``num_classes``), or WeightsUnavailable."""
    import timm

    file_name = f"{timm_name}.safetensors"
    looked = candidate_paths(file_name, explicit) + [Path("<Hugging Face cache>") / f"timm/{timm_name}"]
    for p in looked[:-1]:
        if p.is_file():
            try:
                return timm.create_model(timm_name, pretrained=True, num_classes=num_classes,
                                         pretrained_cfg_overlay={"file": str(p)}, **kwargs)
            except Exception as exc:
                raise WeightsUnavailable(f"weights file {p} for {model} is unusable: {exc}") from None
    if explicit:
        raise _missing(model, file_name, looked, f"the suite's weights file {explicit} does not exist")
    hub = f"timm/{timm_name}"
    try:
        import timm as _timm

        hub = _timm.models.get_pretrained_cfg(timm_name).hf_hub_id or hub
    except Exception:
        pass
    file_name = f"{file_name} (model.safetensors of the Hugging Face repository {hub}, renamed)"
    try:
        if offline():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return timm.create_model(timm_name, pretrained=True, num_classes=num_classes, **kwargs)
    except Exception as exc:
        why = "offline mode, not in the Hugging Face cache" if offline() else f"download failed: {type(exc).__name__}"
        raise _missing(model, file_name, looked, why) from None


def weights_status(ref: str, explicit: str | None = None) -> dict:
    """Where the weights named by ``ref`` ("torchvision:Enum.MEMBER" or "timm:name") are, for `ferbench models`."""
    kind, _, name = ref.partition(":")
    if kind == "torchvision":
        import torchvision.models as tvm

        enum_name, member = name.split(".")
        file_name = Path(getattr(getattr(tvm, enum_name), member).url).name
        looked = candidate_paths(file_name, explicit)
    else:
        file_name = f"{name}.safetensors"
        looked = candidate_paths(file_name, explicit)
        try:
            import timm
            from huggingface_hub import try_to_load_from_cache

            hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
            cached = try_to_load_from_cache(hub_id, "model.safetensors")
            looked.append(Path(cached) if isinstance(cached, str) else Path(f"<Hugging Face cache>/{hub_id}"))
        except Exception:
            pass
    found = next((p for p in looked if p.is_file()), None)
    return {"file": file_name, "available": found is not None, "found": str(found) if found else None,
            "looked": [str(p) for p in looked]}
