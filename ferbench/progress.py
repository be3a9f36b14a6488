"""The live display of a run: one overall bar (weighted by each experiment's estimated time when
known), a bar per experiment in flight, and one line per finished experiment."""
from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape
from datetime import timedelta

from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


class RemainingColumn(ProgressColumn):
    """Time left: until the first progress, the run's own estimate (the number its header and dry run
    print) less the time elapsed; then the work still to do (in estimated seconds, or epochs) at the
    pace seen so far over the whole task, so a wrong estimate corrects itself (rich's own column
    averages the last 30 s, which sees nothing between two experiments' ends)."""

    def render(self, task) -> Text:
        estimate = task.fields.get("estimate")
        if not task.completed and estimate is not None:
            left = max(estimate - (task.elapsed or 0.0), 0.0)
        elif not task.completed or not task.elapsed or task.total is None:
            return Text("-:--:--", style="progress.remaining")
        else:
            left = max(task.total - task.completed, 0) * task.elapsed / task.completed
        return Text(str(timedelta(seconds=round(left))), style="progress.remaining")


class RunProgress:
    def __init__(self, console: Console, total: int, weights: dict[str, float] | None = None):
        self.console_, self.total = console, total
        self.weights = weights or {}
        self.counts = {"done": 0, "reused": 0, "failed": 0, "skipped": 0, "pending": 0, "running": 0}
        self.n = 0
        cols = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), RemainingColumn())
        self._bar = Progress(*cols, console=console, transient=False)
        self._tasks: dict[str, int] = {}
        self._credited: dict[str, float] = {}  # overall progress already given to an experiment in flight

    def __enter__(self) -> "RunProgress":
        self._bar.__enter__()
        total = sum(self.weights.values()) if self.weights else self.total
        self._overall = self._bar.add_task("experiments", total=max(total, 1e-9), info=self._counts(),
                                           estimate=total if self.weights else None)
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    @property
    def console(self) -> Console:
        return self._bar.console

    def _counts(self) -> str:
        c = self.counts
        queued = self.total - self.n - c["running"]
        return (f"{self.n}/{self.total}: {c['running']} running, {queued} queued, {c['done']} done, "
                f"{c['reused']} reused, {c['failed']} failed")

    def _advance(self, eid: str) -> None:
        self.n += 1
        rest = self.weights.get(eid, 1.0) - self._credited.pop(eid, 0.0)
        self._bar.update(self._overall, advance=rest, info=self._counts())

    def line(self, text: str) -> None:
        self.console.print(text)

    def reused(self, eid: str) -> None:
        self.counts["reused"] += 1
        self._advance(eid)
        self.line(f"[dim]{self.n}/{self.total} {escape(eid)}: complete, reused[/]")

    def started(self, eid: str, epochs: int | None):
        """Show the experiment; returns its progress callback (epoch records, batch losses)."""
        self.counts["running"] += 1
        task = self._bar.add_task(f"  {escape(eid)}", total=epochs or 1, info="")
        self._tasks[eid] = task
        self._bar.update(self._overall, info=self._counts())

        def progress(kind, payload):
            if kind == "epoch":
                r = payload
                val = f" val_acc {r['val_accuracy']:.3f}" if "val_accuracy" in r else ""
                self._bar.update(task, completed=r["epoch"], info=f"loss {r['train_loss']:.3f}{val}")
                if eid in self.weights and epochs:  # the overall bar moves with each epoch, not only at the end
                    share = 0.9 * self.weights[eid] * min(r["epoch"] / epochs, 1.0)  # 10 %: evaluation after
                    self._bar.update(self._overall, advance=share - self._credited.get(eid, 0.0))
                    self._credited[eid] = share
            elif kind == "batch" and not math.isnan(payload[2]):
                self._bar.update(task, info=f"batch {payload[0]}/{payload[1]} loss {payload[2]:.3f}")
        return progress

    def finished(self, eid: str, status: str, line: str) -> None:
        if eid in self._tasks:
            self._bar.remove_task(self._tasks.pop(eid))
            self.counts["running"] -= 1
        self.counts[{"ok": "done"}.get(status, status)] += 1
        self._advance(eid)
        self.line(f"{self.n}/{self.total} {escape(eid)}: {line}")
