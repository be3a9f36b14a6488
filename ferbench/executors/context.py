"""What one run's experiments share while they execute, here or on a Ray worker: the planned
experiment, the split cache, the run context, and :func:`compute` (one experiment through its kind).
Below the runner: the runner and every executor import this, it imports neither."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ..data import FERData
from ..data.cross import content_fingerprint, cross_test_set, cross_test_sets
from ..data.splits import SplitData, make_split
from ..experiments import Context, Outcome, RunOptions, run_experiment
from ..schema.results import ExperimentResult
from ..store import RunStore
from ..suite import Experiment


@dataclass
class PlannedExperiment:
    exp: Experiment
    config_hash: str
    reuse: ExperimentResult | None = None
    why_rerun: str | None = None  # why a stored result is not reused (config changed, files differ...)
    estimate: dict | None = None  # dry run of an LLM experiment: prompt, requests, tokens, cost
    seconds: float | None = None  # train experiment to run: estimated time on this device (calibrated)


class SplitCache:
    """Builds each distinct partition once per run (augmented splits are costly)."""

    def __init__(self, data: FERData, suite_dir: Path | None = None):
        self.data, self.suite_dir = data, suite_dir  # suite_dir: where relative cross-dataset paths start
        self._cache: dict[str, SplitData] = {}
        self._cross: dict[str, FERData] = {}  # further test sets by spec, read once per run

    def cross_fingerprints(self, exp: Experiment) -> dict[str, str]:
        """{spec: content fingerprint} of the experiment's further test sets (what its result is keyed by)."""
        for spec in exp.split.cross:
            if spec not in self._cross:
                self._cross[spec] = cross_test_set(spec, self.suite_dir)
        return {spec: content_fingerprint(self._cross[spec]) for spec in exp.split.cross}

    def get(self, exp: Experiment) -> SplitData:
        key = json.dumps([exp.split.model_dump(mode="json"), exp.fold], sort_keys=True)
        if key not in self._cache:
            kw = exp.split.model_dump(exclude={"folds", "cross"})
            self._cache[key] = make_split(self.data, fold=exp.fold or 0, **kw)
            self._cache[key].cross = cross_test_sets(exp.split.cross, self.suite_dir, self._cross)
        return self._cache[key]


@dataclass
class RunContext:
    """What every experiment of one run shares."""
    store: RunStore
    splits: SplitCache
    device: object  # torch.device
    profile: str
    options: RunOptions
    console: Console
    data: FERData


def compute(item: PlannedExperiment, run: RunContext, split: SplitData, progress=None, device=None) -> Outcome:
    """Run one experiment's handler (here, or on a Ray worker with its own device)."""
    ctx = Context(split=split, device=device or run.device, store=run.store, config_hash=item.config_hash,
                  options=run.options, progress=progress, console=run.console)
    return run_experiment(item.exp, ctx)
