"""Reading results folders without running anything.

:func:`suite_status` says, for each experiment a run of a suite would hold, what its run folder
holds now (``ferbench list``). :func:`collect` merges every trustworthy result under one or more
results folders into one long table, one row per experiment x partition x metric, with plain
numbers for CSV/JSON (``ferbench results``, the habit of clip_benchmark's merged tables).

Run folders are read only through :func:`ferbench.store.load_run` and :class:`RunStore`, so a
result that cannot be trusted (another result format, a torn file, files that do not match their
digests) is left out with the reason, never read from raw JSON here.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .csvsafe import safe_dict
from .errors import FerbenchError, ResultFormatError
from .schema.results import RunHeader
from .store import RunStore, load_run
from .suite import Experiment, Overrides, expand, load_suite

# --- ferbench list ---------------------------------------------------------------------------------

STATUSES = ("complete", "failed", "skipped", "pending", "interrupted", "incomplete", "config changed", "not run",
            "unreadable", "unknown")


@dataclass
class ExperimentStatus:
    id: str
    study: str
    kind: str
    model: str  # the registered model, the loaded file's label, or the LLM
    status: str  # one of STATUSES
    detail: str = ""  # the error, the reason, what differs, or the headline result
    accuracy: float | None = None  # the headline accuracy of a complete result
    split: str | None = None  # the partition that accuracy is on (test, val, sample)


@dataclass
class SuiteStatus:
    run_dir: Path
    data: str | None  # the data the folder's results ran on, as run.json records it
    data_note: str  # why statuses are (or cannot be) checked against that data
    experiments: list[ExperimentStatus] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.experiments:
            out[e.status] = out.get(e.status, 0) + 1
        return {s: out[s] for s in STATUSES if s in out}


def _model_of(exp: Experiment) -> str:
    if exp.kind == "llm":
        return exp.llm_endpoint.model
    return getattr(exp, "model", None) or exp.label  # a CLIP experiment is named by its label


def _recorded_data(store: RunStore) -> tuple[RunHeader | None, str]:
    """The run header (for the data fingerprint results were keyed with), or None and why not."""
    if not store.root.is_dir():
        return None, "no run folder yet"
    try:
        header = store.read_run()
    except ResultFormatError as exc:
        return None, f"run.json cannot be used ({str(exc).split(': ', 1)[-1]}): the data the results ran on is unknown"
    if header is None:
        return None, "no run.json: the data the results ran on is unknown"
    d = header.data
    return header, f"checked against the data run.json records: {d.source} ({d.images:,} images)"


def _status(store: RunStore, exp: Experiment, fingerprint: str | None,
            cross: dict[str, str] | None = None) -> ExperimentStatus:
    row = ExperimentStatus(exp.id, exp.study, exp.kind, _model_of(exp), "not run")
    try:
        stored = store.read_result(exp.id)
    except ResultFormatError as exc:
        row.status, row.detail = "unreadable", str(exc).split(": ", 1)[-1]
        return row
    if stored is None:
        left = store.resume_point(exp.id, exp.config_hash())
        if left:  # an interrupted (or killed) run: a re-run resumes from what it left
            row.status, row.detail = "interrupted", f"resumable: {left}"
        return row
    if fingerprint is None:
        row.status, row.detail = "unknown", f"a {stored.status} result whose data is unknown (see above)"
        return row
    from .suite.expansion import result_key

    done, why = store.completed(exp.id, result_key(exp, fingerprint, cross))
    if done is not None:
        row.status = "complete"
        if (m := done.headline) is not None:
            row.accuracy, row.split = m.accuracy, done.headline_split
            row.detail = f"{done.headline_split} accuracy {100 * m.accuracy:.2f}% (n={m.n:,})"
    elif why == "config changed":
        row.status, row.detail = "config changed", "the suite (or profile/overrides) changed since it ran: a run redoes it"
    elif stored.status != "ok":
        row.status = stored.status
        row.detail = ((stored.error or "").splitlines() or [""])[0] if stored.status == "failed" else (stored.reason or "")
    else:
        row.status, row.detail = "incomplete", why or ""
    return row


def suite_status(suite_path: str | Path, *, profile: str = "paper", results_dir: str | Path = "results",
                 only: str | None = None, overrides: Overrides = Overrides()) -> SuiteStatus:
    """What ``ferbench run`` with the same arguments would find in its run folder, per experiment.

    Statuses are checked against the data fingerprint run.json records (a run folder only ever
    holds results on one data source), so nothing is decoded; without a readable run.json a
    stored result's status is ``unknown``.
    """
    from .suite.expansion import run_folder_name

    suite = load_suite(suite_path)
    exps = expand(suite, profile, only, overrides)
    if not exps:
        raise FerbenchError(f"no experiment of suite {suite.name!r} matches --only {only!r}")
    store = RunStore(Path(results_dir) / run_folder_name(suite.name, profile, overrides))
    header, note = _recorded_data(store)
    fp = header.data.fingerprint if header else None
    return SuiteStatus(store.root, header.data.source if header else None, note,
                       [_status(store, e, fp, header.data.cross if header else None) for e in exps])


# --- ferbench results ------------------------------------------------------------------------------

FIELDS = ("run", "suite", "profile", "overrides", "data", "data_fingerprint", "study", "experiment", "kind", "model", "split",
          "metric", "value", "ci_low", "ci_high", "n")
# Reported for every evaluation, in this order; a metric a result lacks is no row, never a blank.
METRICS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")


@dataclass
class Leaderboard:
    rows: list[dict] = field(default_factory=list)  # FIELDS; value/ci/n are numbers (or None)
    runs: list[Path] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (path, why it was not used)
    without_metrics: list[tuple[str, str, str]] = field(default_factory=list)  # (run, experiment, status)

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(safe_dict(r) for r in self.rows)  # None is written as an empty field
        return buf.getvalue()

    def as_json(self) -> dict:
        return {"rows": self.rows, "runs": [str(r) for r in self.runs],
                "left_out": [{"path": p, "why": w} for p, w in self.left_out],
                "without_metrics": [{"run": r, "experiment": e, "status": s} for r, e, s in self.without_metrics]}


def find_runs(path: Path) -> list[Path]:
    """``path`` itself if it is a run folder, else the run folders directly inside it."""
    if (path / "run.json").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/run.json") if p.is_file())


def collect(dirs: list[str | Path]) -> Leaderboard:
    """Every result with metrics under ``dirs`` (results folders or run folders), in long format."""
    board = Leaderboard()
    seen: set[Path] = set()
    for d in map(Path, dirs):
        runs = find_runs(d)
        if not runs:
            board.left_out.append((str(d), "not a run folder (no run.json) and holds none"))
        for run_dir in runs:
            if run_dir.resolve() in seen:
                continue
            seen.add(run_dir.resolve())
            try:
                run = load_run(run_dir)
            except FerbenchError as exc:
                board.left_out.append((str(run_dir / "run.json"), str(exc).split(": ", 1)[-1]))
                continue
            board.runs.append(run_dir)
            board.left_out += [(str(run_dir / f), why) for f, why in run.left_out]
            h = run.header
            base = {"run": run_dir.name, "suite": h.suite, "profile": h.profile,
                    "overrides": " ".join(f"{k}={v}" for k, v in sorted(h.overrides.items())),
                    "data": h.data.source, "data_fingerprint": h.data.fingerprint}
            for r in run.results:
                if not r.ok:
                    board.without_metrics.append((run_dir.name, r.id, r.status))
                    continue
                model = r.config.llm_endpoint.model if r.kind == "llm" else (r.model or r.label)
                for split, m in r.metrics.items():
                    for metric in METRICS:
                        value = getattr(m, metric)
                        if value is None:
                            continue
                        ci = getattr(m, f"{metric}_ci", None)
                        board.rows.append({**base, "study": r.study, "experiment": r.id, "kind": r.kind,
                                           "model": model, "split": split, "metric": metric, "value": value,
                                           "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                                           "n": m.n})
    return board


def status_dict(s: SuiteStatus) -> dict:
    return {"run_dir": str(s.run_dir), "data": s.data, "data_note": s.data_note, "counts": s.counts(),
            "experiments": [asdict(e) for e in s.experiments]}
