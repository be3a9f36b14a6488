"""The one base of every file-format model: unknown keys are errors, not silently ignored."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """What a user writes (suites, endpoints, baselines): no unknown key, no NaN or inf, even where no range is given."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StrictRecord(BaseModel):
    """What a run wrote (results): no unknown key; NaN is kept (a diverged loss is recorded as it was)."""
    model_config = ConfigDict(extra="forbid")
