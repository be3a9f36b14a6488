"""What one run's experiments share while they execute, here or on a Ray worker: the planned
experiment, the split cache, the run context, and :func:`compute` (one experiment through its kind).
Below the runner: the runner and every executor import this, it imports neither."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from rich.console import Console

from ..data import FERData
from ..data.cross import content_fingerprint, cross_test_set, cross_test_sets
from ..data.splits import SplitData, make_split
from ..errors import FerbenchError
from ..experiments import Context, Outcome, RunOptions, run_experiment
from ..schema.study_input import DEFAULT_INPUT, StudyInput
from ..schema.results import ExperimentResult
from ..store import RunStore
from ..suite import Experiment
from ..suite.expansion import cross_key


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

    def __init__(self, data: FERData, suite_dir: Path | None = None,
                 loader: Callable[[StudyInput], FERData] | None = None):
        self.data, self.suite_dir = data, suite_dir  # suite_dir: where relative cross-dataset paths start
        self.loader = loader  # the run's data read at another study input (None: only the default is possible)
        self._cache: dict[str, SplitData] = {}
        self._faced: tuple[FERData, str] | None = None
        self._inputs: dict[StudyInput, FERData] = {DEFAULT_INPUT: data}
        self._cross: dict[tuple[str, StudyInput], FERData] = {}  # further test sets, read once per run

    def data_at(self, input: StudyInput) -> FERData:
        """The run's data at a study's declared input, read once (decoded, or from the array cache)."""
        if input not in self._inputs:
            if self.loader is None:
                raise FerbenchError(f"a study input of {input.describe()} needs the data read again at that size, "
                                    "which this executor cannot do (run it with --executor local)")
            self._inputs[input] = self.loader(input)
        return self._inputs[input]

    def cross_fingerprints(self, exp: Experiment) -> dict[str, str]:
        """{spec: content fingerprint} of the experiment's further test sets (what its result is keyed by)."""
        for spec in exp.split.cross:
            if (spec, exp.input) not in self._cross:
                self._cross[spec, exp.input] = cross_test_set(spec, self.suite_dir, exp.input)
        return {cross_key(spec, exp): content_fingerprint(self._cross[spec, exp.input]) for spec in exp.split.cross}

    def get(self, exp: Experiment) -> SplitData:
        key = json.dumps([exp.split.model_dump(mode="json"), exp.fold, exp.input.model_dump()], sort_keys=True)
        if key not in self._cache:
            kw = exp.split.model_dump(exclude={"folds", "cross", "face_detect"})
            data, note = self.data_at(exp.input), None
            if exp.split.face_detect == "mtcnn":
                if not exp.input.is_default:
                    raise FerbenchError("MTCNN face re-detection runs on 48 px gray FER2013 images; this study "
                                        f"declares input {exp.input.describe()}")
                data, note = self._faces()
            split = self._cache[key] = make_split(data, fold=exp.fold or 0, **kw)
            split.notes[:0] = [note] if note else []
            self.cross_fingerprints(exp)  # reads each further test set at this input, once
            split.cross = cross_test_sets(exp.split.cross, self.suite_dir,
                                          {s: self._cross[s, exp.input] for s in exp.split.cross})
            if not exp.input.is_default or data.conversions:  # how the images were read: on the report's page
                split.notes.append(input_note(exp.input, data))
        return self._cache[key]

    def _faces(self) -> tuple[FERData, str]:
        """The data after MTCNN face re-detection (detected once per run, cached on disk across runs)."""
        if self._faced is None:
            from ..data.faces import apply_faces, detect_faces, kept_note

            det, _ = detect_faces(self.data.images)
            self._faced = (apply_faces(self.data, det), kept_note(int(det.kept.sum()), len(self.data)))
        return self._faced


def input_note(input: StudyInput, data: FERData) -> str:
    """'input 100x100 RGB (declared); read from RAF-DB with gray -> RGB (channels replicated) for 3 images'."""
    conv = "; ".join(f"{what} for {n:,} of {len(data):,} images" for what, n in sorted(data.conversions.items()))
    return (f"input {input.describe()} ({'the study declares it' if not input.is_default else 'the default'}); "
            f"{data.dataset} images read " + (f"with {conv}" if conv else "as stored, unconverted"))


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
