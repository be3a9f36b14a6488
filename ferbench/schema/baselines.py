"""What a baselines file (``ferbench/baselines/<paper>.yaml``) can say: the numbers one paper reports,
its citation and the protocol it describes. The format is documented at the top of each file; this is
its schema (unknown keys are errors), so a misspelt key fails when the file is loaded, not as a number
silently missing from a report."""
from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from .base import Strict

Relation = Literal["=", "<", "<=", ">", ">=", "~"]
Number = Union[int, float]


class Citation(Strict):
    key: str
    authors: list[str]
    title: str
    venue: str
    year: int | None
    note: str | None = None


class _ModelNumber(Strict):
    """Where a model's number stands in the paper and which images it was measured on."""
    model: str
    source: str  # table, figure or page
    split: str  # test | val | train | sample; split_note: which images exactly
    split_note: str | None = None
    compare_split: str | None = None  # the ferbench partition to compare with, where the paper's has none
    contradiction: str | None = None  # id of an entry in `contradictions`


class Reported(_ModelNumber):
    """A headline number that maps onto a ferbench metric."""
    metric: str
    value: float


class PerClassReported(_ModelNumber):
    class_: str = Field(alias="class")
    metric: Literal["precision", "recall", "f1", "accuracy", "support"]
    value: Number
    relation: Relation = "="


class ConfusionReported(Strict):
    model: str
    actual: str | None = None
    predicted: str | None = None
    pair: list[str] | None = Field(None, min_length=2, max_length=2)
    direction: Literal["unstated"] | None = None
    count: int
    of: int | None = None
    source: str
    split: str
    contradiction: str | None = None


class Timing(Strict):
    model: str
    seconds_per_epoch: Number
    source: str


class SampleTable(Strict):
    source: str
    columns: list[str]
    rows: dict[str, list[Number]]


class OtherReported(Strict):
    quantity: str
    value: Union[Number, str, list[Number], list[str]]  # a list of model names: a ranking
    relation: Relation = "="
    source: str
    unit: str | None = None
    model: str | None = None
    split: str | None = None
    compare: str | None = None  # where the reproduced value sits in a result, e.g. history.val_loss@last
    contradiction: str | None = None


class Contradiction(Strict):
    id: str
    text: str
    where: list[str]


class ProtocolRow(Strict):
    """One setting as the paper gives it; ``value`` is in ferbench terms (its shape depends on the setting)."""
    setting: str
    paper: str | None
    value: Union[None, bool, int, float, str, dict]
    quote: str
    section: str
    models: list[str] | None = None
    studies: list[str] | None = None
    assumption: str | None = None
    evidence: str | None = None
    deviation: str | None = None
    class_counts: dict[str, int] | None = None
    per_fold: list[int] | None = None  # k-fold sizes: the value for each fold (0-based), where folds differ


class Baselines(Strict):
    paper: str
    title: str
    file: str
    citation: Citation
    leaky: bool = False
    notes: list[str] = []
    reported: list[Reported] = []
    per_class_reported: list[PerClassReported] = []
    confusion_reported: list[ConfusionReported] = []
    timing: list[Timing] = []
    sample_table: SampleTable | None = None
    other_reported: list[OtherReported] = []
    contradictions: list[Contradiction] = []
    protocol: list[ProtocolRow] = []
