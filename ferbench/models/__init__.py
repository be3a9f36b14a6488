"""Model zoo: every architecture of the five studies, created by name.

>>> from ferbench.models import create_model
>>> model = create_model("basic_cnn", num_classes=7)
"""
from ._registry import ModelInfo, count_parameters, create_model, describe_models, list_models, model_info, \
    register_model, unknown_model_message
from .adapter import FERModel, InputSpec

# Importing the family modules registers their models (explicit, not `import *`).
from . import augmented, cbam, comparative, llm_vs_nn, three_class  # noqa: E402,F401

__all__ = ["FERModel", "InputSpec", "ModelInfo", "count_parameters", "create_model", "describe_models",
           "list_models", "model_info", "register_model", "unknown_model_message"]
