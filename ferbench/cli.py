"""The `ferbench` command line: parse, call the library, print. Nothing else lives here."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import FerbenchError
from .limits import MAX_COST_USD, MAX_EPOCHS, MAX_PER_CLASS, MAX_SEED

# Pipes and CI logs get 140 columns instead of rich's 80, so tables stay one line per row.
console = Console(width=None if sys.stdout.isatty() else 140)

_DATA_FORMS = "FER2013: Kaggle folder/.zip/.tar.gz, fer2013.csv, hf:<id>[:config], a saved HF dataset, or synthetic[:N]."


def _data_option(default: str):
    return click.option("--data", "data", metavar="PATH", help=f"{_DATA_FORMS} Default: {default}")


_stderr = Console(stderr=True, width=console.width)


def _fail(exc: Exception) -> NoReturn:
    raise click.ClickException(str(exc))


def _interrupted(note: str) -> NoReturn:
    """Ctrl-C: one line on what was kept, exit 130 (128 + SIGINT; 1 means an experiment failed)."""
    click.echo(note, err=True)
    sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ferbench")
def main() -> None:
    """Reproducible facial-expression-recognition benchmarks on FER2013.

    Train or load every model a suite names, compare with vision LLMs on stratified samples, and
    render paper-style reports.
    """


class _FiniteFloat(click.FloatRange):
    """A FloatRange that refuses NaN and inf (every comparison with NaN is false: a NaN cap caps nothing)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


class _Threads(click.ParamType):
    name = "threads"

    def convert(self, value, param, ctx):
        if str(value).strip().lower() == "auto":
            return "auto"
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"{value!r} is neither a positive number nor 'auto'", param, ctx)
        return n


_device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto",
                              show_default=True, help="Where models train and run: the best available by default.")


def _run_folder_options(f):
    """What picks a suite's experiments and their run folder: shared by `run` and `list`."""
    for opt in reversed([
        click.option("--profile", default="paper", show_default=True,
                     help="paper, quick, smoke, or one the suite defines."),
        click.option("--results-dir", default="results", show_default=True, type=click.Path(file_okay=False),
                     help="Where run folders go: <dir>/<suite>[-<profile>][-<overrides>]."),
        click.option("--only", metavar="GLOB", help="Only experiments (or studies) whose id matches, e.g. 'cbam.*'."),
        click.option("--no-pretrained", is_flag=True,
                     help="Train transfer models from scratch (stated in the report)."),
        click.option("--epochs", type=click.IntRange(min=1, max=MAX_EPOCHS), help="Train every model for N epochs (recorded as a "
                     "deviation)."),
        click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), help="One training seed instead of the suite's seeds (recorded as a "
                     "deviation)."),
        click.option("--limit", type=click.IntRange(min=1, max=MAX_PER_CLASS), metavar="N",
                     help="At most N images per class in every partition and the LLM sample (recorded as a "
                          "deviation)."),
    ]):
        f = opt(f)
    return f


_sensitivity_option = click.option(
    "--sensitivity", is_flag=True, help="Also the studies' declared sensitivity sweeps (one unstated setting changed "
    "at a time; same run folder, the recipe's results reused), the LLM sweeps (prompts, image variants, repeats) "
    "included.")


def _overrides(no_pretrained, epochs, seed, limit, sensitivity=False):
    from .suite import Overrides

    return Overrides(pretrained=False if no_pretrained else None, epochs=epochs, seed=seed, limit=limit,
                     sensitivity=sensitivity or None)


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
@_data_option("$FERBENCH_DATA, then the suite's data: entry.")
@_run_folder_options
@_device_option
@click.option("--force", is_flag=True, help="Re-run experiments even when a complete result exists.")
@click.option("--eval-only", is_flag=True, help="Re-evaluate trained experiments from their saved model.pt; no training.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images (counted in run.json) instead of failing.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the LLM response cache.")
@click.option("--refresh-llm", is_flag=True, help="Ask the LLMs again (even for complete LLM results) and overwrite "
              "cached answers.")
@click.option("--dry-run", is_flag=True, help="List what would run or be reused, with LLM request counts; run nothing.")
@click.option("--max-cost", type=_FiniteFloat(0, MAX_COST_USD), metavar="USD", help="LLM: a hard cap on the estimated spend of this run.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one experiment after another in this process; ray: model experiments as Ray tasks "
                   "(pip install 'ferbench[ray]').")
@click.option("--address", metavar="ADDR", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray instance).")
@click.option("--threads", type=_Threads(), metavar="N|auto",
              help="CPU threads torch trains with: N, or auto (the cores free at the start). Default: torch's "
                   "default for this machine, the same whatever the load (reproducible). Recorded in run.json.")
@_sensitivity_option
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary instead of tables.")
def run(suite, data, profile, results_dir, only, no_pretrained, epochs, seed, limit, device, force, eval_only,
        skip_bad, no_cache, refresh_llm, dry_run, max_cost, executor, address, threads, sensitivity, as_json):
    """Run every experiment of SUITE not already complete, then write the report."""
    from .experiments import RunOptions
    from .llm.query import LLMRunOptions
    from .runner import RunInterrupted, RunRequest, run_suite

    out = _stderr if as_json else console
    options = RunOptions(eval_only=eval_only, force=force, dry_run=dry_run,
                         llm=LLMRunOptions(no_cache=no_cache, refresh=refresh_llm, max_cost=max_cost))
    request = RunRequest(profile=profile, data=data, results_dir=results_dir, only=only, device=device,
                         overrides=_overrides(no_pretrained, epochs, seed, limit, sensitivity), options=options,
                         skip_bad=skip_bad, executor=executor, address=address, threads=threads)
    try:
        s = run_suite(suite, request, console=out)
    except FerbenchError as exc:
        _fail(exc)
    except RunInterrupted as exc:
        _interrupted(str(exc))
    except KeyboardInterrupt:
        _interrupted("interrupted: results written so far are kept; running the same command again resumes")
    if as_json:
        click.echo(json.dumps(_summary_json(s), indent=2))
    elif dry_run:
        _print_plan(s)
    else:
        _print_summary(s)
    if s.failed:
        sys.exit(1)
    if s.pending:
        sys.exit(3)  # complete but for Batch API jobs still running: run again later to collect them


def _summary_json(s) -> dict:
    return {"run_dir": str(s.run_dir), "seconds": s.seconds, "report": str(s.report) if s.report else None,
            "done": s.done, "reused": s.reused, "failed": s.failed, "skipped": s.skipped, "pending": s.pending,
            "plan": [{"id": p.exp.id, "kind": p.exp.kind, "action": "reuse" if p.reuse else "run",
                      "why": p.why_rerun, "estimated_seconds": p.seconds,
                      **({"estimate": p.estimate} if p.estimate else {})} for p in s.plan],
            "results": [{"id": r.id, "status": r.status, "kind": r.kind,
                         **({"accuracy": m.accuracy, "accuracy_ci": list(m.accuracy_ci), "n": m.n}
                            if (m := r.headline) is not None else {}),
                         **({"error": r.error} if r.error else {})} for r in s.results]}


def _print_plan(s) -> None:
    from .runner import format_seconds

    t = Table("experiment", "kind", "action", "est. time", "why / what", title=f"dry run: {s.run_dir}")
    for p in s.plan:
        what = p.why_rerun or ""
        if p.estimate:
            e = p.estimate
            cost = "unpriced" if e["estimated_cost_usd"] is None else \
                f"~${e['estimated_cost_usd']:.4f} (at most ${e['max_cost_usd']:.4f})"
            what = (f"{e['requests']} requests, ~{e['estimated_prompt_tokens']:,} prompt + "
                    f"~{e['estimated_completion_tokens']:,} completion tokens, {cost}")
        t.add_row(p.exp.id, p.exp.kind, "reuse" if p.reuse else "run",
                  "" if p.seconds is None else f"~{format_seconds(p.seconds)}", what)
    console.print(t)
    for p in s.plan:
        if p.estimate:
            console.print(f"[bold]{escape(p.exp.id)}[/] prompt: {escape(p.estimate['prompt'])}")
    n_run = sum(p.reuse is None for p in s.plan)
    timed = [p.seconds for p in s.plan if p.seconds is not None]
    untimed = sum(p.seconds is None and p.reuse is None and p.exp.kind == "train" for p in s.plan)
    total = (f", ~{format_seconds(sum(timed))} of training on this device" if timed else "") + \
        (f" ({untimed} training(s) without an estimate)" if untimed and timed else "")
    console.print(f"{n_run} would run{total}, {len(s.plan) - n_run} would be reused; nothing was trained or sent.")


def _print_summary(s) -> None:
    t = Table("experiment", "status", "accuracy %", "95% CI", "n", title="results")
    for r in s.results:
        m = r.headline
        t.add_row(r.id, r.status + (" (reused)" if r.id in s.reused else ""),
                  f"{100 * m.accuracy:.2f}" if m else "–",
                  f"[{100 * m.accuracy_ci[0]:.1f}, {100 * m.accuracy_ci[1]:.1f}]" if m else "–", str(m.n) if m else "–")
    console.print(t)
    console.print(f"{len(s.done)} run, {len(s.reused)} reused, {len(s.skipped)} skipped, "
                  f"{len(s.failed)} failed" + (f", {len(s.pending)} pending" if s.pending else "")
                  + f" in {s.seconds:.1f} s")
    if s.pending:
        console.print(f"[yellow]pending:[/] {', '.join(s.pending)}: Batch API jobs still running; run the same "
                      "command again later to collect them (nothing is sent twice)")
    if s.report:
        console.print(f"report: {s.report} and {s.report.with_suffix('.html')}")
    if s.failed:
        console.print(f"[red]failed:[/] {', '.join(s.failed)} (see result.json / error.log in each folder)")


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False))
def validate(suite):
    """Check SUITE and report every problem with its YAML line."""
    from .suite import Overrides, expand, load_suite

    try:
        s = load_suite(suite)
        n = {p: len(expand(s, p)) for p in ("paper", "quick", "smoke")}  # expansion checks ids and bounds too
        if any(st.sensitivity or (st.llm and st.llm.sensitivity) for st in s.studies):  # the declared sweeps too
            n["paper --sensitivity"] = len(expand(s, "paper", overrides=Overrides(sensitivity=True)))
    except FerbenchError as exc:
        _fail(exc)
    k = len(s.studies)
    click.echo(f"{suite}: ok — {k} stud{'y' if k == 1 else 'ies'}; experiments per profile: "
               + ", ".join(f"{p} {k}" for p, k in n.items()))
    from .llm.serving import local_endpoint_note

    for study in s.studies:  # what a local VLM server will be asked at, with which key, and what it is not sent
        for ep in study.llm.endpoints if study.llm is not None else []:
            note = local_endpoint_note(ep)
            if note:
                click.echo(f"  {study.name}: {note}")


_STATUS_STYLE = {"complete": "green", "failed": "red", "not run": "dim", "unreadable": "red"}


@main.command("list")
@click.argument("suite", type=click.Path(dir_okay=False))
@_run_folder_options
@_sensitivity_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(suite, profile, results_dir, only, no_pretrained, epochs, seed, limit, sensitivity, as_json):
    """The experiments of SUITE and what their run folder holds for each: complete, failed, skipped,
    pending, interrupted (resumable), incomplete, config changed, not run. Nothing is decoded or run.

    Give the same --profile and overrides as the run: each combination has its own run folder.
    """
    from .leaderboard import status_dict, suite_status

    try:
        st = suite_status(suite, profile=profile, results_dir=results_dir, only=only,
                          overrides=_overrides(no_pretrained, epochs, seed, limit, sensitivity))
    except FerbenchError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(status_dict(st), indent=2))
        return
    console.print(f"run folder {escape(str(st.run_dir))}: {escape(st.data_note)}", soft_wrap=True)
    t = Table("experiment", "kind", "model", "status", "detail")
    for e in st.experiments:
        style = _STATUS_STYLE.get(e.status, "yellow")
        t.add_row(escape(e.id), e.kind, escape(e.model), f"[{style}]{e.status}[/]", escape(e.detail))
    console.print(t)
    console.print(", ".join(f"{n} {s}" for s, n in st.counts().items()))


@main.command()
@click.argument("dirs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), metavar="PATH",
              help="Also write the table as CSV (plain numbers: fractions, not percentages).")
@click.option("--json", "as_json", is_flag=True, help="Print rows, runs and left-out files as JSON instead of a table.")
def results(dirs, csv_path, as_json):
    """One long table of every result under DIRS (results folders or run folders; default: results):
    suite, study, experiment, profile, data, metric, value, 95% CI, n.

    Results that cannot be trusted (another result format, torn or mismatched files) are left out,
    each with the reason.
    """
    from .atomic import atomic_write_text
    from .leaderboard import collect

    dirs = dirs or ("results",)
    if not Path(dirs[0]).is_dir():
        _fail(ValueError(f"no results folder {dirs[0]}: pass one or more results folders or run folders"))
    board = collect(list(dirs))
    if not board.runs:
        why = "; ".join(f"{p}: {w}" for p, w in board.left_out)
        _fail(ValueError(f"no ferbench run found under {', '.join(dirs)} ({why})"))
    if csv_path:
        atomic_write_text(csv_path, board.csv())
    if as_json:
        click.echo(json.dumps(board.as_json(), indent=2))
        return
    t = Table("suite", "study", "experiment", "profile", "data", "split", "metric", "value", "95% CI", "n",
              title=f"{len(board.rows):,} results from {len(board.runs)} run(s)")
    for r in board.rows:
        ci = "–" if r["ci_low"] is None else f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        t.add_row(escape(r["suite"]), escape(r["study"]), escape(r["experiment"]),
                  escape(" ".join(filter(None, (r["profile"], r["overrides"])))),
                  escape(Path(r["data"]).name), r["split"], r["metric"], f"{r['value']:.4f}", escape(ci), str(r["n"]))
    console.print(t)
    for run, eid, status in board.without_metrics:
        console.print(f"[yellow]{escape(run)}/{escape(eid)}: {status}, no metrics[/]", soft_wrap=True)
    for path, why in board.left_out:
        console.print(f"[yellow]left out {escape(path)}: {escape(why)}[/]", soft_wrap=True)
    if csv_path:
        console.print(f"CSV: {escape(str(csv_path))}")


@main.group()
def data():
    """Inspect FER2013 sources."""


@data.command("faces")
@_data_option("$FERBENCH_DATA.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def data_faces(data, as_json):
    """MTCNN face re-detection (the augmented study's Data Cleaning): kept count beside the paper's 30,159.

    Needs facenet-pytorch (pip install --no-deps facenet-pytorch). Detections are cached with the data.
    """
    import time

    from .data import load_data, resolve_data_spec
    from .data.faces import detect_faces, face_summary

    try:
        spec, _ = resolve_data_spec(data)
        fer = load_data(spec, progress=None if as_json else _stderr)
        t = time.perf_counter()
        det, cached = detect_faces(fer.images, progress=None if as_json else
                                   lambda i, n: click.echo(f"\rMTCNN {i:,}/{n:,}", nl=i == n, err=True))
    except FerbenchError as exc:
        _fail(exc)
    info = {**face_summary(fer, det), "seconds": round(time.perf_counter() - t, 1), "cached": cached}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    console.print(f"{escape(info['detector'])}\nkept {info['kept']:,} of {info['images']:,} images "
                  f"(the paper kept {info['paper_kept']:,}); {info['seconds']} s" + (" (cached)" if cached else ""))
    for c, text in info["per_class"].items():
        console.print(f"  {c}: {text}")


@data.command("info")
@_data_option("$FERBENCH_DATA.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (no progress display).")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images (counted) instead of failing.")
def data_info(data, as_json, skip_bad):
    """Source, counts per split x class, and cache location.

    The first load of a source decodes it (with a progress bar on stderr) and caches the arrays;
    later loads read the cache.
    """
    from .data import describe, load_data, resolve_data_spec

    try:
        spec, origin = resolve_data_spec(data)
        info = describe(load_data(spec, skip_bad=skip_bad, progress=None if as_json else _stderr), spec)
    except FerbenchError as exc:
        _fail(exc)
    info["from"] = origin
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    console.print(f"source: {escape(info['source'])} (from {origin}); {info['dataset']}, {info['images']:,} images")
    if "cache" in info:
        console.print(f"cache: {info['cache']}")
    if info["skipped"]:
        console.print(f"[yellow]skipped {len(info['skipped'])} unreadable image(s)[/]")
    for why, n in info["excluded"].items():
        console.print(f"excluded {n:,}: {escape(why)}")
    for what, n in info["conversions"].items():
        console.print(f"converted {n:,}: {escape(what)}")
    t = Table()
    t.add_column("split", no_wrap=True)
    for c in [*next(iter(info["counts"].values())).keys(), "total"]:
        t.add_column(c, justify="right")
    for usage, c in info["counts"].items():
        t.add_row(usage, *map(str, c.values()), str(sum(c.values())))
    console.print(t)


@main.command()
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, with every place weights were looked for.")
@click.option("--timm", "timm_pattern", metavar="PATTERN",
              help="List the timm architectures matching PATTERN (a glob, e.g. 'resnet*'): each trains as "
                   "'model: {timm: NAME}'.")
def models(pattern, as_json, timm_pattern):
    """Registered models: study, input, parameters, ImageNet weights found.

    PATTERN (a glob, any case, e.g. '*resnet*') lists only the models it matches.
    """
    if timm_pattern is not None:
        from .models.timm_any import list_timm

        names = list_timm(timm_pattern)
        if not names:
            _fail(ValueError(f"timm has no architecture matching {timm_pattern!r}"))
        click.echo(json.dumps(names) if as_json else "\n".join(names + [f"{len(names)} timm architecture(s); "
                                                                          "use one as 'model: {timm: NAME}'"]))
        return
    from .models.catalog import describe_models, model_names  # the cached catalogue: no torch

    rows = describe_models(pattern)
    if not rows:
        _fail(ValueError(f"no model matches {pattern!r}. Available: {', '.join(model_names())}"))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    t = Table("model", "study", "input", "params", "ImageNet weights here")
    for r in rows:
        ws = r.get("weights_status")
        here = "–" if not ws else (f"[green]yes[/] {escape(ws['found'])}" if ws["available"] else
                                   f"[red]no[/]: {escape(ws['file'])}")
        t.add_row(r["name"], r["study"], r["input"], f"{r['parameters']:,}", here)
    console.print(t)
    missing = [r for r in rows if r.get("weights_status") and not r["weights_status"]["available"]]
    if missing:
        console.print("Missing weights: place each file in $FERBENCH_WEIGHTS or the first torch cache folder "
                      "looked in; `ferbench models --json` lists every place looked.")


@main.command()
@click.option("--models", default="basic_cnn,deep_cnn", show_default=True, help="Comma-separated model names.")
@_data_option("synthetic:3500 (image content does not change the speed).")
@_device_option
@click.option("--batch-size", default=64, show_default=True, help="Images per training and inference batch.")
@click.option("--steps", default=20, show_default=True, help="Timed training batches per pipeline.")
@click.option("--workers", default=2, show_default=True, help="DataLoader workers of the conventional pipeline.")
@click.option("--repeats", default=3, show_default=True, help="Interleaved repetitions; the median is reported.")
@click.option("--input-size", type=int, help="Input size for models above 48 px (e.g. 112 on a CPU).")
@click.option("--feature-cache", "feature_cache", is_flag=True,
              help="Also time ResNet-50 transfer epochs with vs without the frozen-feature cache.")
@click.option("--load", "load_spec", metavar="PATH", help="Also time decoding PATH vs reading the array cache.")
@click.option("--amp", type=click.Choice(["auto", "off", "bf16", "fp16"]), default="auto", show_default=True,
              help="Autocast of training and inference, as a run trains and evaluates (auto: bf16 on CUDA, and "
                   "on AMX CPUs except for the models measured slower there, MobileNetV2 and ViT; else fp32).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (no progress display).")
def bench(models, data, device, batch_size, steps, workers, repeats, input_size, feature_cache, load_spec, amp,
          as_json):
    """Images/s per model: ferbench's device-resident pipeline vs DataLoader + per-image transforms."""
    from .bench import feature_cache_speedup, load_speedup, run_bench
    from .data import load_data
    from .engine import select_device
    from .models import list_models, unknown_model_message

    names = [m.strip() for m in models.split(",") if m.strip()]
    for n in names:
        if n not in list_models():
            _fail(ValueError(unknown_model_message(n)))
    try:
        fer = load_data(data or "synthetic:3500", progress=None if as_json else _stderr)
        dev = select_device(device)
    except (FerbenchError, RuntimeError) as exc:
        _fail(exc)
    train = fer.usage == "Training"
    images, labels = fer.images[train], fer.labels[train]
    out: dict = {"device": str(dev), "data": data or "synthetic:3500"}
    out["models"] = run_bench(names, images, labels, dev, batch_size, steps, workers, input_size, repeats, amp=amp,
                              progress=None if as_json else (lambda n: console.print(f"[dim]benchmarking {n}…[/]")))
    if feature_cache:
        out["feature_cache"] = feature_cache_speedup(images[:256], labels[:256], dev, input_size or 224, batch_size)
    if load_spec:
        out["load"] = load_speedup(load_spec)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    t = Table("model", "train img/s (ferbench)", "train img/s (DataLoader)", "ratio", "infer img/s (ferbench)",
              "infer img/s (DataLoader)", "ratio", title=f"{dev}, batch {batch_size}, {workers} loader workers")
    for r in out["models"]:
        t.add_row(r["model"], f"{r['train_fast_ips']:.0f}", f"{r['train_conventional_ips']:.0f}",
                  f"{r['train_ratio']:.2f}x", f"{r['infer_fast_ips']:.0f}", f"{r['infer_conventional_ips']:.0f}",
                  f"{r['infer_ratio']:.2f}x")
    console.print(t)
    e = Table("model", "GFLOP per step", "train GFLOP/s", "matmul GFLOP/s", "of matmul",
              title="training efficiency: FLOP/s of a training step (torch's FLOP counter, forward + backward) "
                    "as a share of a 2048x2048 matmul's in the same process")
    for r in out["models"]:
        e.add_row(r["model"], f"{r['train_step_gflop']:.2f}", f"{r['train_gflops']:.0f}",
                  f"{r['matmul_gflops']:.0f} ({r['matmul_dtype']})",
                  "– (LSTM not counted)" if r["efficiency"] is None else f"{100 * r['efficiency']:.0f} %")
    console.print(e)
    if feature_cache:
        fc = out["feature_cache"]
        console.print(f"ResNet-50 transfer, {fc['images']} images at {fc['input_size']} px: epoch after the first "
                      f"{fc['cached']['later_epoch_s']:.2f} s with the feature cache vs "
                      f"{fc['uncached']['later_epoch_s']:.2f} s without ({fc['speedup_after_first_epoch']:.1f}x)")
    if load_spec:
        ld = out["load"]
        console.print(f"loading {ld['images']:,} images: decode {ld['decode_s']:.2f} s, cache {ld['cache_s']:.3f} s "
                      f"({ld['speedup']:.0f}x)")


@main.command()
@_device_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one object per check).")
def doctor(device, as_json):
    """Exercise every device-dependent path on DEVICE in about a minute; exit 0 only if all required checks pass."""
    from .doctor import run_doctor

    rep = run_doctor(device, progress=None if as_json else (lambda n: _stderr.print(f"[dim]checking {n}…[/]")))
    if as_json:
        click.echo(json.dumps(rep.as_dict(), indent=2))
    else:
        t = Table("check", "result", "why", "s", title=f"ferbench doctor on {escape(rep.device)}")
        colour = {"pass": "green", "fail": "red", "skipped": "yellow"}
        for c in rep.checks:
            t.add_row(escape(c.name) + ("" if c.required else " (optional)"), f"[{colour[c.status]}]{c.status}[/]",
                      escape(c.why), f"{c.seconds:.1f}")
        console.print(t)
    if not rep.ok:
        raise SystemExit(1)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--verdicts", is_flag=True, help="Also print the verdict on every number the five papers report (Markdown; "
              "tables/verdicts.csv holds the rows of the studies in the run).")
def report(run_dir, verdicts):
    """Render report.md / report.html for RUN_DIR (results/<suite>)."""
    from .report import render_report, verdicts_markdown

    try:
        p = render_report(Path(run_dir))
        table = verdicts_markdown(Path(run_dir)) if verdicts else None
    except FerbenchError as exc:
        _fail(exc)
    if table is not None:
        click.echo(table)
    console.print(f"report: {p} and {p.with_suffix('.html')}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
def pack(run_dir):
    """Gzip the per-image CSV files of RUN_DIR's trustworthy results (predictions.csv -> predictions.csv.gz),
    to share a finished run in a repository. Reports, `results` and resumed runs read packed files as they are."""
    from .pack import pack_run

    try:
        summary = pack_run(Path(run_dir))
    except (FerbenchError, OSError) as exc:
        _fail(exc)
    before, after = sum(b for _, b, _ in summary.packed), sum(a for _, _, a in summary.packed)
    console.print(f"packed {len(summary.packed)} file(s): {before:,} -> {after:,} bytes")
    for path, why in summary.left_out:
        console.print(f"[yellow]not packed {escape(path)}: {escape(why)}[/]", soft_wrap=True)


if __name__ == "__main__":
    main()
