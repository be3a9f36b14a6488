"""What is registered, without importing torch: the registry's :class:`ModelInfo` of every model (and
the facts `ferbench models` shows) remembered in one cache file per version of the model code and of
the libraries that build models. `ferbench validate`, `list` and `models` read it; only the first call
after an install or a change to a model file imports the registry (torch) to write it.

Nothing here may import torch, torchvision or timm at module level.
"""
from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata as md
import json
from pathlib import Path

from .. import __version__
from ..environment import cache_root
from ..errors import unknown_name

_PACKAGES = ("torch", "torchvision", "timm")


def code_version() -> str:
    """A hash of ferbench's version, the model-building libraries' versions and every file of this
    package: a changed architecture or a new torchvision never reads an old answer."""
    h = hashlib.sha256(__version__.encode())
    for pkg in _PACKAGES:
        try:
            h.update(f"|{pkg}={md.version(pkg)}".encode())
        except md.PackageNotFoundError:
            h.update(f"|{pkg}=none".encode())
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:20]


def _path() -> Path:
    return cache_root() / "models" / f"catalog-{code_version()}.json"


def _valid(v) -> bool:
    spec = v.get("input_spec") if isinstance(v, dict) else None
    ws = v.get("weights_source") if isinstance(v, dict) else None
    return isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("study"), str) and \
        isinstance(v.get("pretrained"), bool) and isinstance(spec, dict) and type(spec.get("size")) is int and \
        type(v.get("parameters")) is int and v["parameters"] >= 0 and \
        isinstance(v.get("weights"), (str, type(None))) and (ws is None or (
            isinstance(ws, dict) and isinstance(ws.get("file"), str)
            and isinstance(ws.get("hf_hub_id"), (str, type(None)))))


def catalog() -> dict[str, dict]:
    """name -> the model's ModelInfo as plain data (``input`` described in words, ``input_spec`` with
    size, channels, mean and std), its parameters and the file its ImageNet weights come as. An
    unreadable or odd cache file is rebuilt from the registry."""
    path = _path()
    try:
        raw = json.loads(path.read_text()) if path.stat().st_size < 1_000_000 else None
    except (OSError, ValueError):
        raw = None
    if isinstance(raw, dict) and raw and all(_valid(v) and v["name"] == k for k, v in raw.items()):
        return raw
    from ._registry import registry_catalog

    built = registry_catalog()
    try:
        from ..atomic import atomic_write_json

        atomic_write_json(path, built)
    except Exception:  # an unwritable cache folder only costs speed
        pass
    return built


def model_names() -> list[str]:
    return sorted(catalog())


def describe_models(pattern: str | None = None) -> list[dict]:
    """One row per registered model (matching the glob ``pattern``, any case) for `ferbench models`:
    its ModelInfo, parameters and, for a pretrained model, where its weights are (a file lookup)."""
    c = catalog()
    rows = []
    for name in sorted(c):
        if pattern is not None and not fnmatch.fnmatchcase(name.lower(), pattern.lower()):
            continue
        e = c[name]
        row = {k: v for k, v in e.items() if k not in ("input_spec", "weights_source")}
        if e["weights"]:
            from .pretrained import weights_status

            row["weights_status"] = weights_status(e["weights"], source=e["weights_source"])
        rows.append(row)
    return rows


def info(name: str) -> dict:
    """The registered model ``name`` as plain data; KeyError with 'Did you mean ...?' when unknown.
    A ``timm:<arch>`` name is checked against timm's list (imports timm, and with it torch)."""
    if name.startswith("timm:"):
        from dataclasses import asdict

        from .timm_any import check_arch, timm_info

        check_arch(name[len("timm:"):])
        i = timm_info(name)
        return {**i.as_dict(), "input_spec": asdict(i.input), "weights_source": None}
    c = catalog()
    if name not in c:
        raise KeyError(unknown_name("model", name, sorted(c)))
    return c[name]
