"""`ferbench run`: expand a suite, hand each experiment not yet complete to its handler, store the
outcome, render the report.

Crash safety: each experiment's files are written atomically, result.json last; training
checkpoints every epoch and resumes from it; a failure is recorded and the run goes on. One run at
a time holds a run folder, and each profile / set of overrides has its own folder, so runs of
different configurations never overwrite each other's results.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import figures
from .data import FERData, load_data, resolve_data_spec
from .data.cache import check_cache_writable
from .environment import busy_cpu_hint, environment
from .errors import FerbenchError, StoreError
from .executors.context import PlannedExperiment, RunContext, SplitCache
from .executors.recorder import Recorder, RunSummary
from .experiments import KINDS, ExperimentKind, RunOptions, experiment_kind
from .progress import RunProgress
from .schema.results import RunHeader, StudyMeta
from .store import RunStore
from .suite import Experiment, LoadedSuite, Overrides, expand, load_suite, resolve_profile
from .suite.expansion import result_key, run_folder_name  # noqa: F401 - light, for `ferbench list` too


def _data_fingerprint(spec: str, data: FERData) -> str:
    return hashlib.sha256(json.dumps([Path(spec).name, data.counts()], sort_keys=True).encode()).hexdigest()[:12]


def _study_meta(suite: LoadedSuite, splits: SplitCache, exps: list[Experiment]) -> list[StudyMeta]:
    out = []
    for st in suite.studies:
        ex = next((e for e in exps if e.study == st.name), None)
        if ex is None:
            continue
        sd = splits.get(ex)
        out.append(StudyMeta(name=st.name, paper=st.paper, title=st.title, description=st.description,
                             split=sd.description, split_sizes=sd.sizes(), classes=list(sd.classes), leaky=sd.leaky,
                             notes=st.notes + sd.notes))
    return out


def _check_same_data(store: RunStore, header: RunHeader) -> RunHeader | None:
    """The earlier header of this run folder; refuses a folder that holds results on other data."""
    try:
        earlier = store.read_run()
    except FerbenchError:
        return None  # an unreadable header of an older ferbench: its results are re-run anyway
    if earlier is not None and earlier.data.fingerprint != header.data.fingerprint:
        raise StoreError(f"{store.root} holds results of suite {earlier.suite!r} on other data "
                         f"({earlier.data.source}, {earlier.data.images:,} images); this run uses {header.data.source} "
                         f"({header.data.images:,} images). Use another --results-dir to keep both.")
    return earlier


def _keep_earlier(header: RunHeader, earlier: RunHeader | None) -> None:
    """A partial run (--only) keeps the studies and experiments an earlier run of the suite recorded,
    so the report still covers every result in the folder."""
    if earlier is None:
        return
    names = {st.name for st in header.studies}
    header.studies += [st for st in earlier.studies if st.name not in names]
    order = {n: i for i, n in enumerate(header.suite_studies)}  # the suite's order, whichever ran first
    header.studies.sort(key=lambda st: order.get(st.name, len(order)))
    header.experiments += [e for e in earlier.experiments if e not in header.experiments]


def _set_threads(requested: str | int | None) -> tuple[int, str]:
    """Torch's CPU threads for this run (``--threads``), chosen once at the start and recorded in run.json."""
    import torch

    from .environment import choose_threads

    try:
        n, why = choose_threads(requested)
    except ValueError as exc:
        raise FerbenchError(str(exc)) from None
    if requested is not None:
        torch.set_num_threads(n)
    return n, why


def plan_experiments(store: RunStore, exps: list[Experiment], fp: str, options: RunOptions,
                     cross: dict[str, str] | None = None) -> list[PlannedExperiment]:
    """Which experiments run and which stored results are reused (and why not, when not). ``cross``:
    {spec: content fingerprint} of every further test set the experiments are scored on."""
    out = []
    for exp in exps:
        h = result_key(exp, fp, cross)
        done, why = store.completed(exp.id, h)
        kind = experiment_kind(exp.kind)
        forced = options.force or (kind.forced is not None and kind.forced(exp, options))
        out.append(PlannedExperiment(exp, h, None if forced else done, why))
    return out


def estimate_times(plan: list[PlannedExperiment], splits: SplitCache, device, console: Console,
                   remote: bool = False) -> None:
    """Fill ``seconds`` of each train experiment that will run: a few timed steps per distinct model
    and settings on this device (cached across runs in $FERBENCH_CACHE/calibration.json), times its
    epochs, steps and evaluation sizes; at most a minute of timing (the note says what was left out).
    An upper bound where early stopping may end training sooner. These numbers are the only estimates:
    the dry run's table, the run's header and the progress bar's weights. Not under Ray (``remote``):
    its tasks run on the cluster's devices, not this driver's."""
    from .estimates import estimate_experiments
    from .environment import cache_root

    todo = [(p.exp, splits.get(p.exp)) for p in plan if p.reuse is None and p.exp.kind == "train"]
    if not todo:
        return
    if remote:
        console.print("[dim]time estimates: none under --executor ray (tasks run on the cluster's devices)[/]")
        return
    with console.status("timing a few training steps per model on this device…") as status:
        est = estimate_experiments(todo, device, cache=cache_root() / "calibration.json",
                                   progress=lambda e: status.update(f"timing a few steps of {escape(e.model)}…"))
    console.print(f"[dim]{escape(est.note)}[/]")
    for p in plan:
        p.seconds = est.seconds.get(p.exp.id)


def format_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def _print_estimates(plan: list[PlannedExperiment], console: Console) -> None:
    timed = [p for p in plan if p.seconds is not None]
    if not timed:
        return
    width = max(len(p.exp.id) for p in timed)
    for p in timed:
        console.print(f"  {escape(p.exp.id):{width}}  ~{format_seconds(p.seconds)}", highlight=False)
    untimed = sum(p.seconds is None and p.reuse is None and p.exp.kind == "train" for p in plan)
    console.print(f"estimated training time on this device: ~{format_seconds(sum(p.seconds for p in timed))} "
                  f"for {len(timed)} experiment(s) (early stopping may end some sooner)"
                  + (f"; {untimed} without an estimate" if untimed else ""))


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what was kept and that a re-run resumes (the CLI exits 130)."""


def interrupted_note(store: RunStore, summary: RunSummary, in_flight: list[str]) -> str:
    """One line: the results kept, what each interrupted experiment left to resume from."""
    kept = []
    for eid in in_flight:
        left = store.resume_point(eid)
        kept.append(f"{eid}: {left}" if left else f"{eid}: nothing yet (it restarts)")
    done = len(summary.done) + len(summary.failed) + len(summary.skipped)
    return (f"interrupted: {done} experiment(s) finished this run and are kept"
            + (f"; {'; '.join(kept)}" if kept else "")
            + f". Running the same command again resumes from there ({store.root}).")


def _cpu_device():
    import torch

    return torch.device("cpu")


def _dry_run_estimates(plan: list[PlannedExperiment], splits: SplitCache) -> None:
    """A dry run's plan table shows what each kind estimates (an LLM's prompt, requests, tokens and cost)."""
    for item in plan:
        kind = experiment_kind(item.exp.kind)
        if kind.estimate is not None and item.reuse is None:
            item.estimate = kind.estimate(item.exp, splits.get(item.exp))


def _by_kind(exps: list[Experiment]) -> list[tuple[ExperimentKind, list[Experiment]]]:
    return [(k, mine) for k in KINDS if (mine := [e for e in exps if e.kind == k.name])]


def _execute(run: RunContext, executor_, summary: RunSummary) -> None:
    """Hand the experiments to run to the executor; the recorder stores what it reports."""
    weights = {p.exp.id: p.seconds for p in summary.plan if p.seconds is not None}
    with RunProgress(run.console, len(summary.plan), weights=weights or None) as bar:
        recorder = Recorder(run, bar, summary)
        for item in summary.plan:
            if item.reuse is not None:
                recorder.reused(item)
        try:
            executor_.run([i for i in summary.plan if i.reuse is None], run, recorder)
        except KeyboardInterrupt:
            raise RunInterrupted(interrupted_note(run.store, summary, recorder.in_flight)) from None


@dataclass(frozen=True)
class RunRequest:
    """What `ferbench run` was asked besides the suite file: its command-line options, typed, one object."""
    profile: str = "paper"
    data: str | None = None  # --data; else $FERBENCH_DATA, else the suite's data:
    results_dir: str | Path = "results"
    only: str | None = None  # glob over experiment ids
    device: str = "auto"
    overrides: Overrides = field(default_factory=Overrides)
    options: RunOptions = field(default_factory=RunOptions)  # eval-only, force, dry run, the LLM options
    skip_bad: bool = False
    executor: str = "local"  # local | ray
    address: str | None = None  # a Ray cluster
    report: bool = True
    threads: str | int | None = None


def _header(suite: LoadedSuite, suite_path, req: RunRequest, exps: list[Experiment], splits: SplitCache,
            data: tuple[str, str, FERData, str], device: str, threads: tuple[int, str]) -> RunHeader:
    spec, origin, fer, fp = data
    return RunHeader(
        suite=suite.name, description=suite.config.description, suite_file=str(suite_path), profile=req.profile,
        profile_description=resolve_profile(suite, req.profile).description,
        overrides={k: v for k, v in vars(req.overrides).items() if v is not None and k != "sensitivity"},
        data={"source": spec, "origin": origin, "counts": fer.counts(), "images": len(fer), "fingerprint": fp,
              "skipped_unreadable": fer.skipped,
              "cross": {k: v for e in exps for k, v in splits.cross_fingerprints(e).items()}},
        device=device, environment=environment(), started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        experiments=[e.id for e in exps], studies=_study_meta(suite, splits, exps),
        suite_studies=[st.name for st in suite.studies],
        threads={"requested": None if req.threads is None else str(req.threads), "used": threads[0],
                 "why": threads[1]})


def run_suite(suite_path: str | Path, request: RunRequest = RunRequest(), console: Console | None = None) -> RunSummary:
    from .engine import select_device
    from .executors import make_executor

    req, options = request, request.options
    console = console or Console()
    t_start = time.perf_counter()
    suite = load_suite(suite_path)
    resolve_profile(suite, req.profile)  # an unknown profile fails before anything else
    exps = expand(suite, req.profile, req.only, req.overrides)
    if not exps:
        raise FerbenchError(f"no experiment of suite {suite.name!r} matches --only {req.only!r}")
    check_cache_writable()  # before anything writes to it: one line, not a traceback from a cache writer
    if any(e.split.face_detect == "mtcnn" for e in exps):
        from .data.faces import require

        require()  # a study asks for MTCNN: without facenet-pytorch it fails here, never silently skips it
    for kind, mine in _by_kind(exps):
        if kind.preflight is not None:
            kind.preflight(mine, options)  # e.g. an unenforceable LLM spend cap fails before anything is trained
    executor_ = None if options.dry_run else make_executor(req.executor, req.address, console, device=req.device)
    spec, origin = resolve_data_spec(req.data, suite.config.data, suite.dir)
    store = RunStore(Path(req.results_dir) / run_folder_name(suite.name, req.profile, req.overrides))
    console.print(f"[bold]ferbench[/] suite [cyan]{escape(suite.name)}[/], profile [cyan]{escape(req.profile)}[/], "
                  f"{len(exps)} experiment(s); data {escape(spec)} (from {origin}); results {escape(str(store.root))}")
    fer = load_data(spec, skip_bad=req.skip_bad, progress=console)
    if fer.skipped:
        console.print(f"[yellow]skipped {len(fer.skipped)} unreadable image(s) (--skip-bad); listed in run.json[/]")
    # Under Ray the driver trains nothing: it neither checks --device against its own hardware (the
    # cluster's is checked when it connects) nor takes a GPU's memory for the whole run.
    local = req.executor == "local"
    dev = select_device(req.device) if local else _cpu_device()
    threads = _set_threads(req.threads)
    if local and req.threads is None and (hint := busy_cpu_hint(dev.type)):
        console.print(f"[yellow]note:[/] {hint}")
    splits = SplitCache(fer, suite.dir, lambda inp: load_data(spec, skip_bad=req.skip_bad, progress=console, input=inp))
    fp = _data_fingerprint(spec, fer)
    header = _header(suite, suite_path, req, exps, splits, (spec, origin, fer, fp),
                     str(dev) if local else f"{req.executor} ({req.device})", threads)
    summary = RunSummary(store.root)
    with store.lock():
        _keep_earlier(header, _check_same_data(store, header))
        for kind, mine in _by_kind(exps):
            if kind.prepare is not None:
                kind.prepare(store, mine, options)  # e.g. what earlier runs spent counts against --max-cost
        summary.plan = plan_experiments(store, exps, fp, options, header.data.cross)
        estimate_times(summary.plan, splits, dev, console, remote=not local)
        if options.dry_run:  # the plan table shows the estimates, and nothing runs
            _dry_run_estimates(summary.plan, splits)
            summary.seconds = time.perf_counter() - t_start
            return summary
        _print_estimates(summary.plan, console)
        store.write_run(header)
        figures.sample_grid(fer.images, fer.labels, fer.classes, store.root / "figures" / "samples.png",
                            title="Sample images per class")
        _execute(RunContext(store, splits, dev, req.profile, options, console, fer), executor_, summary)
        _finish(store, header, summary, t_start, req.report)
    return summary


def _finish(store: RunStore, header: RunHeader, summary: RunSummary, t_start: float, report: bool) -> None:
    summary.seconds = time.perf_counter() - t_start
    header.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header.wall_seconds = summary.seconds
    store.write_run(header)
    if report:
        from .report import render_report

        summary.report = render_report(store.root)
