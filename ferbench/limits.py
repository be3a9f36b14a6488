"""One set of limits for every number a user can give: suite files, profiles and command-line flags.

Each is checked where the value enters (the suite schema, the profile schema, click's option
types, :class:`ferbench.suite.Overrides`), so ``validate`` and ``--dry-run`` refuse what would
otherwise fail later inside torch, numpy or the clock. NaN is refused everywhere: every comparison
with NaN is false, so a NaN cap caps nothing.
"""
from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

MAX_EPOCHS = 10_000
MAX_SEED = 2**32 - 1  # numpy's and torch's seeding both accept 0..2**32-1
MAX_PER_CLASS = 1_000_000  # images per class in any partition (FER2013 has at most 8,989)
MAX_REQUEST_SECONDS = 3_600.0  # one LLM request, connection to last byte
MAX_WAIT_SECONDS = 7 * 86_400.0  # waiting for a Batch API job; between its status checks
MAX_COST_USD = 1_000_000.0
MAX_PRICE_PER_1M = 10_000.0  # USD per million tokens

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def check_number(value, name: str, *, low: float, high: float, integer: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a finite number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:,g} and {high:,g}; got {value!r}")
