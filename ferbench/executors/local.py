"""The local executor: every experiment in this process, one after another."""
from __future__ import annotations

import time
import traceback
from typing import Protocol


class Reporter(Protocol):
    """What an executor tells the runner: an experiment started (returns its progress callback, or
    None), and an experiment finished with an outcome or an exception."""

    def started(self, item): ...

    def finished(self, item, outcome, error: BaseException | None, seconds: float, split,
                 trace: str | None = None) -> None: ...


class LocalExecutor:
    """Every experiment in this process, in suite order (a study's LLMs after its models)."""
    name = "local"

    def run(self, items, run, reporter: Reporter) -> None:
        from .context import compute

        for item in items:
            progress = reporter.started(item)
            t0 = time.perf_counter()
            split = None
            try:
                split = run.splits.get(item.exp)
                outcome = compute(item, run, split, progress)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one failure must not stop the suite
                reporter.finished(item, None, exc, time.perf_counter() - t0, split, traceback.format_exc())
                continue
            reporter.finished(item, outcome, None, time.perf_counter() - t0, split)
