"""What a handler gets (:class:`Context`) and what it gives back (:class:`Outcome`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..data.splits import SplitData
from ..store import Checkpoint, RunStore

if TYPE_CHECKING:
    from ..llm.query import LLMRunOptions


@dataclass(frozen=True)
class RunOptions:
    """How a run treats its experiments (from the command line)."""
    eval_only: bool = False  # re-evaluate trained experiments from model.pt
    force: bool = False  # re-run experiments that are complete
    dry_run: bool = False  # list what would run; train nothing, send nothing (the one --dry-run flag)
    llm: LLMRunOptions | None = None  # cache, refresh, the run-wide --max-cost spend (None: the defaults)


@dataclass(frozen=True)
class ExperimentKind:
    """One experiment kind: how it runs, and the hooks by which it takes part in a run (all optional)."""
    name: str
    run: Callable[[Any, "Context"], "Outcome"]
    preflight: Callable[[list, RunOptions], None] | None = None  # the run's experiments of this kind
    prepare: Callable[[RunStore, list, RunOptions], None] | None = None  # under the run folder's lock
    forced: Callable[[Any, RunOptions], bool] | None = None  # re-run despite a complete stored result
    estimate: Callable[[Any, SplitData], dict] | None = None  # a dry run's plan-table entry


@dataclass
class Context:
    split: SplitData
    device: Any  # torch.device
    store: RunStore
    config_hash: str  # the experiment's config hash with the data fingerprint
    options: RunOptions = RunOptions()
    progress: Callable[[str, Any], None] | None = None  # ("epoch", record) / ("batch", (step, steps, loss))
    console: Any = None


@dataclass
class Outcome:
    """What an experiment produced, before the store writes it."""
    fields: dict[str, Any]  # kind-specific result fields, validated into the typed result by the runner
    status: str = "ok"
    error: str | None = None
    reason: str | None = None
    predictions: tuple[list[str], list[list]] | None = None  # header, rows
    model_payload: dict | None = None  # model.pt
    files: dict[str, bytes] = field(default_factory=dict)  # figures
    arrays: dict[str, dict[str, Any]] = field(default_factory=dict)  # <name>.npz: name -> arrays (an LLM's sample)
    kept: list[str] = field(default_factory=list)  # files already in the folder the result vouches for (--eval-only)
    checkpoint: Checkpoint | None = None  # removed once the result is stored
