"""An LLM study's declared sensitivity and stability sweep (``llm: {sensitivity: ...}``, run with ``--sensitivity``).

Each listed value is one more LLM experiment over the very images of the study's sample, every other setting
kept at the ``llm:`` block's own (the base): prompt templates (named or literal), how the image is sent
(gray or RGB, its size, the ``detail`` the request asks for), the sampling temperature, and repeated queries
at a temperature above 0 scored by the majority answer with the per-image agreement rate. It is the
model side's ``sensitivity:`` (one setting at a time, same run folder) for the question a VLM study asks:
how much of a number is the model, and how much the prompt and the pixels.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Strict as _Strict

MAX_REPEATS = 20
MAX_SWEEP_VALUES = 10
SWEEP_SETTINGS = ("prompt", "color", "image_size", "detail", "temperature", "repeats")


class RepeatsConfig(_Strict):
    """``n`` answers per image at ``temperature``: scored by the majority answer, with the agreement rate."""
    n: int = Field(ge=2, le=MAX_REPEATS, description="Requests per image (each its own sampled answer).")
    temperature: float = Field(gt=0, le=2, description=(
        "Sampling temperature of the repeats (above 0: at 0 the answers would only measure server noise)."))

    @property
    def text(self) -> str:
        return f"{self.n} answers at temperature {self.temperature:g}"


class LLMSensitivityConfig(_Strict):
    """The declared sweep: each value of each setting is tried on its own against the base."""
    prompt: list[str] | None = Field(None, min_length=1, max_length=MAX_SWEEP_VALUES, description=(
        "Prompt templates: registered names (ferbench.llm.prompts) or the literal prompt text."))
    color: list[Literal["gray", "rgb"]] | None = Field(None, min_length=1, max_length=2, description=(
        "gray: every image converted to grayscale; rgb: the colour images as read (refused on grayscale data)."))
    image_size: list[int] | None = Field(None, min_length=1, max_length=MAX_SWEEP_VALUES, description=(
        "Pixels per side the image is sent at (bicubic resize), e.g. [224] beside the native 48."))
    detail: list[Literal["low", "high", "auto"]] | None = Field(None, min_length=1, max_length=3, description=(
        "The request's image_url detail field (OpenAI: low = one 512-px tile; high = tiled)."))
    temperature: list[float] | None = Field(None, min_length=1, max_length=MAX_SWEEP_VALUES, description=(
        "Sampling temperatures, one answer per image each."))
    repeats: RepeatsConfig | None = None
    endpoints: list[str] | None = Field(None, min_length=1, description=(
        "Labels (or model names) of the endpoints swept; default all."))

    @model_validator(mode="after")
    def _something_swept(self):
        if all(getattr(self, s) is None for s in SWEEP_SETTINGS):
            raise ValueError(f"an llm sensitivity sweep needs at least one of: {', '.join(SWEEP_SETTINGS)}")
        for size in self.image_size or []:
            if not 48 <= size <= 1024:
                raise ValueError(f"sweep image_size {size}: give 48 to 1024 pixels")
        for t in self.temperature or []:
            if not 0 <= t <= 2:
                raise ValueError(f"sweep temperature {t}: give 0 to 2")
        return self

    def members(self) -> list[tuple[str, object]]:
        """(setting, value) of every declared variant, in declaration order."""
        out: list[tuple[str, object]] = []
        for s in SWEEP_SETTINGS:
            v = getattr(self, s)
            out += [(s, v)] if isinstance(v, RepeatsConfig) else [(s, x) for x in v or []]
        return out
