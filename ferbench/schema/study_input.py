"""What images a study feeds its models: a size and a colour, declared once per study (``input:``).

``input: {size: 100, channels: 3}`` reads every image at 100 x 100 RGB (RAF-DB's aligned faces as
distributed); the default, 48 x 48 gray, is FER2013's own form and what every study read before the
declaration existed. Readers decode at this size and colour, the decoded-array cache is keyed by it,
and model construction reads it (:func:`ferbench.models.create_model`'s ``study_input``).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StudyInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(48, ge=8, le=512)  # square images, size x size pixels
    channels: Literal[1, 3] = 1  # 1: gray (PIL "L"), 3: RGB

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_INPUT

    @property
    def shape(self) -> tuple[int, ...]:
        """One image's array shape: (H, W) for gray, (H, W, 3) for RGB."""
        return (self.size, self.size) if self.channels == 1 else (self.size, self.size, 3)

    def describe(self) -> str:
        return f"{self.size}x{self.size} {'gray' if self.channels == 1 else 'RGB'}"


DEFAULT_INPUT = StudyInput()
