"""predictions.csv as typed columns: what the store reads and the metric check recomputes from.

Its own module so that :mod:`ferbench.store` (which reads the file) and :mod:`ferbench.verify` (which
the store calls to check a result against it) share the type without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SINGLE_VIEW = "/single"  # split suffix of a TTA result's single-view rows: 'test/single' beside 'test'


@dataclass
class Predictions:
    """predictions.csv as columns: ``id``, ``split``, ``true`` and ``predicted`` (ints), then per-class
    probabilities (``proba``, float matrix) for models, or ``raw``/``status``/``error`` for LLMs."""
    ids: np.ndarray
    split: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def __getitem__(self, column: str) -> np.ndarray:
        """A column by its CSV name (``id``, ``split``, ``true``, ``predicted``, ``raw``, ``status``...)."""
        named = {"id": self.ids, "split": self.split, "true": self.true, "predicted": self.predicted}
        return named[column] if column in named else self.extra[column]
