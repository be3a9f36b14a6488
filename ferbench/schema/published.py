"""What scoring a published answers file found, beyond its metrics: coverage, matching and ``gt`` checks."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from .base import StrictRecord


def _share(v):
    if isinstance(v, (bool, str, bytes)):
        raise ValueError(f"a number is expected, not {type(v).__name__}")
    return v


Share = Annotated[float, BeforeValidator(_share), Field(ge=0, le=1, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, strict=True)]
Names = Annotated[list[str], Field(max_length=20)]


class PublishedPart(StrictRecord):
    """One partition: what the file covers, what it misses, top-k, and where its ``gt`` disagrees."""
    covered: Count
    total: Count
    missing: Count  # images of the partition the file does not answer
    missing_examples: Names = Field(default_factory=list)
    top_k: dict[str, Share] = Field(default_factory=dict)  # "1", "2", ... "5": on the covered images
    gt_checked: Count = 0  # answers with a gt column
    gt_disagree: Count = 0  # gt names another class than the dataset (the dataset's label is used)
    gt_examples: Names = Field(default_factory=list)


class PublishedInfo(StrictRecord):
    format: Literal["ranked", "label"]
    rows: Count  # answers in the file
    unknown: Count = 0  # ids matching no image of the scored partitions
    unknown_examples: Names = Field(default_factory=list)
    ambiguous: Count = 0  # ids matching several images (never resolved by a guess)
    ambiguous_examples: Names = Field(default_factory=list)
    parts: dict[Literal["val", "test"], PublishedPart] = Field(default_factory=dict)
