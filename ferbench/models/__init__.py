"""Model zoo: every architecture of the five studies, created by name.

>>> from ferbench.models import create_model
>>> model = create_model("basic_cnn", num_classes=7)

Importing this package is free: the registry (and torch) load on first use of a name below, so
`ferbench validate` and `ferbench models` can read :mod:`.catalog` without torch.
"""
from __future__ import annotations

import importlib

_WHERE = {"ModelInfo": "_registry", "count_parameters": "_registry", "count_flops": "_registry", "create_model": "_registry",
          "list_models": "_registry", "model_info": "_registry", "register_model": "_registry",
          "unknown_model_message": "_registry", "describe_models": "catalog", "FERModel": "adapter",
          "InputSpec": "adapter"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value
