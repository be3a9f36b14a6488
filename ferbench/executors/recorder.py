"""What the executors report, written through the result store: an experiment's outcome becomes its
typed result (result.json last, vouching for its files by digest), a failure is recorded with its
traceback, and the run's summary and progress display follow along. The same for every executor, so
the files, the reuse rules and the exit code do not depend on where an experiment ran."""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError
from rich.markup import escape

from ..errors import DiskFullError, FerbenchError
from ..experiments import Outcome
from ..progress import RunProgress
from ..schema.results import RESULT, ExperimentResult, SplitInfo
from ..store import RunStore, sha256_file
from ..suite import Experiment
from .context import PlannedExperiment, RunContext


@dataclass
class RunSummary:
    run_dir: Path
    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # Batch API jobs still running: the next run collects them
    results: list[ExperimentResult] = field(default_factory=list)
    plan: list[PlannedExperiment] = field(default_factory=list)
    report: Path | None = None
    seconds: float = 0.0


def split_info(split) -> SplitInfo | None:
    """The one record of a split a result keeps: from the split itself (local, an LLM in the driver) or
    as a Ray worker sent it back (already a :class:`SplitInfo`; the images stay on the worker)."""
    return split if split is None or isinstance(split, SplitInfo) else SplitInfo.of(split)


def base_fields(exp: Experiment, h: str, profile: str, device: str, split: SplitInfo | None) -> dict:
    return {"id": exp.id, "study": exp.study, "kind": exp.kind, "label": exp.label,
            "config": exp.model_dump(mode="json"), "config_hash": h, "seed": exp.seed, "fold": exp.fold,
            "deviations": exp.deviations, "profile": profile, "device": device, "split": split}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def store_outcome(store: RunStore, base: dict, outcome: Outcome, seconds: float) -> ExperimentResult:
    """Write what an experiment produced; result.json last, vouching for the files by digest. The
    handler's fields win over the base ones (a Ray worker's own device replaces the driver's)."""
    eid = base["id"]
    files = {}
    if outcome.predictions is not None:
        files["predictions.csv"] = store.write_predictions(eid, *outcome.predictions)
    if outcome.model_payload is not None:
        files["model.pt"] = store.save_model(eid, outcome.model_payload)
    for name, data in outcome.files.items():
        store.write_file(eid, name, data)
    for name, arrays in outcome.arrays.items():
        files[f"{name}.npz"] = store.write_arrays(eid, name, **arrays)
    for name in outcome.kept:
        digest = sha256_file(store.exp_dir(eid) / name)
        if digest is not None:
            files[name] = digest
    result = RESULT.validate_python({
        **base, **outcome.fields, "status": outcome.status, "error": outcome.error, "reason": outcome.reason,
        "files": files, "wall_seconds": seconds, "finished": _now()})
    store.write_result(result)
    if outcome.checkpoint is not None:
        outcome.checkpoint.remove()  # complete: model.pt holds the weights
    return result


def store_failure(store: RunStore, base: dict, exc: BaseException, seconds: float,
                  trace: str | None = None) -> ExperimentResult:
    msg = str(exc) if isinstance(exc, FerbenchError) else f"{type(exc).__name__}: {exc}"
    store.write_error(base["id"], trace or traceback.format_exc())
    result = RESULT.validate_python({**base, "status": "failed", "error": msg, "wall_seconds": seconds,
                                     "finished": _now()})
    store.write_result(result)
    return result


def status_line(r: ExperimentResult) -> str:
    if r.status == "failed":
        return f"[red]FAILED[/] {escape((r.error or '').splitlines()[0] if r.error else '')}"
    if r.status in ("skipped", "pending"):
        return f"[yellow]{r.status}[/] {escape(r.reason or '')}"
    part, m = r.headline_split, r.headline
    acc = f"{part} acc {m.accuracy:.4f} [{m.accuracy_ci[0]:.3f}, {m.accuracy_ci[1]:.3f}]" if m else ""
    return f"[green]ok[/] {acc} ({r.wall_seconds:.1f} s)"


class Recorder:
    """Writes what the executor reports through the store and keeps the display and summary current
    (the :class:`~ferbench.executors.local.Reporter` every executor talks to)."""

    def __init__(self, run: RunContext, bar: RunProgress, summary: RunSummary):
        self.run, self.bar, self.summary = run, bar, summary
        self.in_flight: list[str] = []  # experiments started and not yet finished (for an interrupt's note)

    def started(self, item: PlannedExperiment):
        exp = item.exp
        self.in_flight.append(exp.id)
        if item.why_rerun and item.why_rerun != "config changed":
            self.bar.line(f"[yellow]{escape(exp.id)}: stored result not reused: {escape(item.why_rerun)}[/]")
        return self.bar.started(exp.id, exp.train.epochs if exp.kind == "train" else None)

    def finished(self, item: PlannedExperiment, outcome: Outcome | None, error: BaseException | None,
                 seconds: float, split, trace: str | None = None) -> None:
        """``split``: the experiment's split (a SplitData here, a SplitInfo from a Ray worker) or None."""
        if item.exp.id in self.in_flight:
            self.in_flight.remove(item.exp.id)
        if isinstance(error, DiskFullError):
            raise error  # run-wide: every later write would fail too; one message, and no result recorded
        run = self.run
        base = base_fields(item.exp, item.config_hash, run.profile, str(run.device), split_info(split))
        try:
            result = store_outcome(run.store, base, outcome, seconds) if error is None else \
                store_failure(run.store, base, error, seconds, trace)
        except ValidationError as exc:  # the outcome did not fit the result contract: record it, go on
            result = store_failure(run.store, base, exc, seconds)
        training = getattr(result, "training", None)
        if training is not None and training.checkpoint_discarded:
            self.bar.line(f"[yellow]{escape(item.exp.id)}: {escape(training.checkpoint_discarded)}[/]")
        s = self.summary
        {"ok": s.done, "failed": s.failed, "pending": s.pending}.get(result.status, s.skipped).append(item.exp.id)
        s.results.append(result)
        self.bar.finished(item.exp.id, result.status, status_line(result))

    def reused(self, item: PlannedExperiment) -> None:
        self.summary.reused.append(item.exp.id)
        self.summary.results.append(item.reuse)
        self.bar.reused(item.exp.id)
