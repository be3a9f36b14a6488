"""What a suite may say about a CLIP-style model (``model: {clip: PATH, ...}``) and what its result records."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Strict, StrictRecord

ARCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")  # a built-in open_clip name; never 'hf-hub:...'
DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


class CLIPModelConfig(Strict):
    """A contrastive image-text model read with open_clip from local files only (nothing is downloaded):
    ``clip: FOLDER`` holding ``open_clip_config.json`` and its weights, or ``clip: FILE`` with ``arch`` (a
    built-in open_clip architecture such as ViT-B-32). ``mode``: ``zero_shot`` (class names in prompt
    templates) or ``linear_probe`` (logistic regression on frozen image features, C chosen on val)."""
    clip: str = Field(min_length=1, max_length=4096)
    arch: str | None = None
    mode: Literal["zero_shot", "linear_probe"] = "zero_shot"
    templates: list[str] | None = Field(None, min_length=1, max_length=100)  # default: clip_benchmark's FER2013 set
    classnames: dict[str, str] | None = None  # class -> the words put in the templates; default: clip_benchmark's
    C: list[float] = Field(default_factory=lambda: list(DEFAULT_CS), min_length=1, max_length=30)
    batch_size: int = Field(64, ge=1, le=4096)

    @field_validator("arch")
    @classmethod
    def _local_arch(cls, v):
        if v is not None and not ARCH.match(v):
            raise ValueError(f"arch {v!r} must be a built-in open_clip architecture name (e.g. ViT-B-32); "
                             "hub names are not accepted: weights come from local files only")
        return v

    @field_validator("templates")
    @classmethod
    def _one_slot(cls, v):
        for t in v or ():
            if t.count("{c}") != 1 or len(t) > 300:
                raise ValueError(f"template {t[:60]!r} must hold '{{c}}' (the class name) once, in at most 300 "
                                 "characters")
        return v

    @model_validator(mode="after")
    def _positive_c(self):
        if any(not c > 0 for c in self.C):
            raise ValueError(f"C values must be positive; got {self.C}")
        return self


class CLIPInfo(StrictRecord):
    """How a CLIP experiment ran: the weights, the prompts (zero-shot) or the probe's choice of C."""
    mode: Literal["zero_shot", "linear_probe"]
    weights: str
    arch: str
    image_size: int
    templates: list[str] = Field(default_factory=list)
    classnames: dict[str, str] = Field(default_factory=dict)
    C: float | None = None  # linear probe: the C chosen on val
    val_accuracy_by_C: dict[str, float] = Field(default_factory=dict)
    feature_seconds: float = 0.0  # image features of every partition used, after the model was loaded
    images_featurized: int = 0
    device: str = ""
