"""Where a run's experiments execute.

``local`` (the default) runs them one after another in this process. ``ray`` hands model
experiments to a Ray cluster (:mod:`ferbench.executors.ray`, the ``ferbench[ray]`` extra) and runs
LLM experiments in the driver. Either way the runner writes every outcome through the result store,
so the files, the reuse rules, the report and the exit code do not depend on the executor.
"""
from __future__ import annotations

import time
import traceback
from typing import Protocol

from ..errors import FerbenchError


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
        from ..runner import compute

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


def make_executor(name: str, address: str | None = None, console=None, device: str = "auto"):
    if name == "local":
        if address:
            raise FerbenchError("--address names a Ray cluster; use it with --executor ray")
        return LocalExecutor()
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(address=address, console=console, device=device)
    raise FerbenchError(f"unknown executor {name!r}; expected local or ray")
