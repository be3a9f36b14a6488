"""`ferbench run`: expand a suite, run every experiment not yet complete, write results, report.

Crash safety: each experiment writes its files atomically, result.json last; training checkpoints
every epoch (named by config hash) and resumes from it; a failure is recorded and the run goes on.
"""
from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn

from . import figures
from .data import FERData, load_data, resolve_data_spec
from .data.splits import SplitData, make_split
from .engine import TrainConfig, fit, measure_inference, predict_proba, prepare_model, seed_everything, \
    select_device
from .errors import FerbenchError
from .gradcam import gradcam
from .metrics import summarize
from .models import count_parameters, create_model, model_info
from .store import RunStore, environment
from .suite import Experiment, SuiteConfig, expand, load_suite, resolve_profile


@dataclass
class RunSummary:
    run_dir: Path
    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: Path | None = None
    seconds: float = 0.0


class SplitCache:
    """Builds each distinct partition once per run (augmented splits are costly)."""

    def __init__(self, data: FERData):
        self.data = data
        self._cache: dict[str, SplitData] = {}

    def get(self, exp: Experiment) -> SplitData:
        key = json.dumps([exp.split.model_dump(mode="json"), exp.fold], sort_keys=True)
        if key not in self._cache:
            kw = exp.split.model_dump(exclude={"folds"})
            self._cache[key] = make_split(self.data, fold=exp.fold or 0, **kw)
        return self._cache[key]


def _data_fingerprint(spec: str, data: FERData) -> str:
    return hashlib.sha256(json.dumps([Path(spec).name, data.counts()], sort_keys=True).encode()).hexdigest()[:12]


def _study_meta(suite: SuiteConfig, splits: SplitCache, exps: list[Experiment]) -> list[dict]:
    out = []
    for st in suite.studies:
        ex = next((e for e in exps if e.study == st.name), None)
        if ex is None:
            continue
        sd = splits.get(ex)
        out.append({"name": st.name, "paper": st.paper, "title": st.title, "description": st.description,
                    "split": sd.description, "split_sizes": sd.sizes(), "classes": list(sd.classes),
                    "leaky": sd.leaky, "notes": st.notes + sd.notes})
    return out


def _evaluate_and_save(exp: Experiment, model, split: SplitData, store: RunStore, device: torch.device) -> dict:
    """Evaluate on val and test, write predictions.csv and Grad-CAM; return the metric part."""
    out = store.exp_dir(exp.id)
    k = len(split.classes)
    cfg = exp.train or TrainConfig()
    # Trained, reloaded and user models all run in the same memory format: identical weights give
    # identical predictions.
    prepare_model(model, cfg.model_copy(update={"input_size": None}), device)
    batch = cfg.eval_batch_size
    evals, rows, preds = {}, [], {}
    for part_name, part in (("val", split.val), ("test", split.test)):
        if part is None or len(part) == 0:
            continue
        proba = predict_proba(model, part.images, device, batch)
        pred = preds[part_name] = proba.argmax(1)
        evals[part_name] = summarize(part.labels, pred, proba, num_classes=k)
        rows += [[i, part_name, int(t), int(p), *(f"{q:.5f}" for q in pr)]
                 for i, t, p, pr in zip(part.ids, part.labels, pred, proba)]
    store.write_predictions(exp.id, ["id", "split", "true", "predicted", *(f"p_{c}" for c in split.classes)], rows)
    te = split.test
    # Grad-CAM on the first test image of every class, for convolutional models.
    idx = np.concatenate([np.flatnonzero(te.labels == c)[:1] for c in range(k)]).astype(int)
    cams = gradcam(model, te.images[idx], device) if len(idx) else None
    if cams is not None:  # captions reuse the test predictions just computed
        figures.gradcam_grid(te.images[idx], cams, te.labels[idx], preds["test"][idx], split.classes, out / "gradcam.png",
                             f"Grad-CAM: {exp.label}")
    return {
        "metrics": evals,
        "timing": {"inference": measure_inference(model, device, batch_size=64)},
        "parameters": {"total": count_parameters(model), "trainable": count_parameters(model, trainable_only=True)},
        "input": model.spec.describe(),
    }


def _save_model(exp: Experiment, model, split: SplitData, path: Path, config_hash: str) -> None:
    torch.save({"state_dict": model.state_dict(), "model": exp.model, "model_args": exp.model_args,
                "input": model.spec.__dict__, "classes": list(split.classes), "config_hash": config_hash}, path)


def run_train(exp: Experiment, split: SplitData, store: RunStore, device: torch.device,
              progress: Callable | None = None, eval_only: bool = False) -> dict:
    """Train (or, with ``eval_only``, reload), evaluate and save one model experiment."""
    out = store.exp_dir(exp.id)
    out.mkdir(parents=True, exist_ok=True)
    h = exp.config_hash()
    k = len(split.classes)
    if eval_only:
        from .models.loading import load_user_model
        from .suite import UserModelConfig

        if not (out / "model.pt").exists():
            raise FerbenchError(f"--eval-only: no trained model at {out / 'model.pt'}; run without --eval-only first")
        model = load_user_model(UserModelConfig(name=exp.model, checkpoint=str(out / "model.pt")), split.classes)
        previous = store.load_result(exp.id) or {}
        res = _evaluate_and_save(exp, model, split, store, device)
        res["timing"] = {**previous.get("timing", {}), **res["timing"]}
        return {**res, "history": previous.get("history", []),
                "training": {**previous.get("training", {}), "eval_only": True},
                "model_info": model_info(exp.model).as_dict(), "_checkpoint": None}
    for stale in out.glob("checkpoint-*.pt"):
        if stale.name != f"checkpoint-{h}.pt":
            stale.unlink()  # a changed config never resumes from another config's weights
    ckpt = out / f"checkpoint-{h}.pt"
    seed_everything(exp.seed)  # weight initialisation is part of what the seed fixes
    model = create_model(exp.model, num_classes=k, pretrained=exp.pretrained, weights=exp.weights, **exp.model_args)
    tr, va = split.train, split.val
    fr = fit(model, tr.images, tr.labels, va.images if va is not None else None,
             va.labels if va is not None else None, exp.train, device=device, seed=exp.seed, checkpoint=ckpt,
             on_epoch=progress and (lambda rec: progress("epoch", rec)),
             on_batch=progress and (lambda s, n, loss: progress("batch", (s, n, loss))))
    res = _evaluate_and_save(exp, model, split, store, device)
    _save_model(exp, model, split, out / "model.pt", h)
    hist = fr.history
    res["timing"].update(train_seconds=fr.train_seconds,
                         seconds_per_epoch=float(np.mean([r["seconds"] for r in hist])) if hist else None)
    return {**res, "history": hist,
            "training": {"epochs_run": len(hist), "best_epoch": fr.best_epoch, "stopped_early": fr.stopped_early,
                         "resumed_from_epoch": fr.resumed_from_epoch, "feature_cache": fr.feature_cache_used},
            "model_info": model_info(exp.model).as_dict(), "_checkpoint": ckpt}


def run_load(exp: Experiment, split: SplitData, store: RunStore, device: torch.device) -> dict:
    """Evaluate a user's model (or a saved checkpoint) exactly as trained models are evaluated."""
    from .models.loading import load_user_model, runs_on_cpu_only

    store.exp_dir(exp.id).mkdir(parents=True, exist_ok=True)
    model = load_user_model(exp.user_model, split.classes)
    if runs_on_cpu_only(model):
        device = torch.device("cpu")
    res = _evaluate_and_save(exp, model, split, store, device)
    res["timing"].update(train_seconds=None, seconds_per_epoch=None)
    return {**res, "history": [], "training": {"loaded_from": exp.user_model.load or exp.user_model.checkpoint},
            "model_info": {"name": exp.label, "study": "user", "paper": "user-supplied model",
                           "input": model.spec.describe()}}


def _keep_earlier_studies(run_info: dict, store: RunStore) -> None:
    """A partial run (--only) keeps the studies and experiments an earlier run of the suite recorded,
    so the report still covers every result in the folder."""
    try:
        earlier = json.loads((store.root / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return
    names = {st["name"] for st in run_info["studies"]}
    run_info["studies"] += [st for st in earlier.get("studies", []) if st["name"] not in names]
    run_info["experiments"] += [e for e in earlier.get("experiments", []) if e not in run_info["experiments"]]


def run_suite(suite_path: str | Path, *, profile: str = "paper", data: str | None = None,
              results_dir: str | Path = "results", only: str | None = None, device: str = "auto",
              no_pretrained: bool = False, eval_only: bool = False, skip_bad: bool = False,
              llm_options: dict | None = None,
              console: Console | None = None, report: bool = True) -> RunSummary:
    console = console or Console()
    t_start = time.perf_counter()
    suite = load_suite(suite_path)
    prof = resolve_profile(suite, profile)
    exps = expand(suite, profile, only, pretrained_override=False if no_pretrained else None)
    if not exps:
        raise FerbenchError(f"no experiment of suite {suite.name!r} matches --only {only!r}")
    spec, origin = resolve_data_spec(data, suite.data, Path(suite_path).resolve().parent)
    console.print(f"[bold]ferbench[/] suite [cyan]{suite.name}[/], profile [cyan]{profile}[/], "
                  f"{len(exps)} experiment(s); data {spec} (from {origin})")
    fer = load_data(spec, skip_bad=skip_bad)
    if fer.skipped:
        console.print(f"[yellow]skipped {len(fer.skipped)} unreadable image(s) (--skip-bad); listed in run.json[/]")
    dev = select_device(device)
    store = RunStore(results_dir, suite.name)
    splits = SplitCache(fer)
    fp = _data_fingerprint(spec, fer)
    run_info = {
        "suite": suite.name, "description": suite.description, "suite_file": str(suite_path),
        "profile": profile, "profile_description": prof.description,
        "data": {"source": spec, "from": origin, "counts": fer.counts(), "images": len(fer), "fingerprint": fp,
                 "skipped_unreadable": fer.skipped},
        "device": str(dev), "environment": environment(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "experiments": [e.id for e in exps], "studies": _study_meta(suite, splits, exps),
    }
    _keep_earlier_studies(run_info, store)
    store.write_run(run_info)
    figures.sample_grid(fer.images, fer.labels, fer.classes, store.root / "figures" / "samples.png",
                        title="Sample images per class")
    summary = RunSummary(store.root)
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*cols, console=console, transient=False) as bar:
        overall = bar.add_task("experiments", total=len(exps), info="")
        for n, exp in enumerate(exps, 1):
            h = exp.config_hash() + fp
            if store.is_complete(exp.id, h) and not (eval_only and exp.kind == "train"):
                summary.reused.append(exp.id)
                bar.console.print(f"[dim]{n}/{len(exps)} {exp.id}: complete, reused[/]")
                bar.advance(overall)
                continue
            epochs = exp.train.epochs if exp.train else 1
            task = bar.add_task(f"  {exp.id}", total=epochs, info="")

            def progress(kind, payload, task=task):
                if kind == "epoch":
                    r = payload
                    val = f" val_acc {r['val_accuracy']:.3f}" if "val_accuracy" in r else ""
                    bar.update(task, completed=r["epoch"], info=f"loss {r['train_loss']:.3f}{val}")
                elif not np.isnan(payload[2]):
                    bar.update(task, info=f"batch {payload[0]}/{payload[1]} loss {payload[2]:.3f}")

            base = {"id": exp.id, "study": exp.study, "kind": exp.kind, "label": exp.label, "model": exp.model,
                    "config": exp.model_dump(mode="json"), "config_hash": h, "seed": exp.seed, "fold": exp.fold,
                    "deviations": exp.deviations, "profile": profile, "device": str(dev)}
            t0 = time.perf_counter()
            try:
                split = splits.get(exp)
                base["split"] = {"description": split.description, "sizes": split.sizes(),
                                 "classes": list(split.classes), "leaky": split.leaky, "notes": split.notes}
                if exp.kind == "train":
                    res = run_train(exp, split, store, dev, progress, eval_only=eval_only)
                    ckpt = res.pop("_checkpoint")
                    status = "ok"
                elif exp.kind == "load":
                    res, ckpt, status = run_load(exp, split, store, dev), None, "ok"
                else:
                    from .llm.query import run_llm_experiment

                    res = run_llm_experiment(exp, split, store, console=bar.console, **(llm_options or {}))
                    ckpt = None
                    status = res.pop("status", "ok")
                result = {**base, "status": status, **res}
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one failure must not stop the suite
                ckpt = None
                msg = str(exc) if isinstance(exc, FerbenchError) else f"{type(exc).__name__}: {exc}"
                store.exp_dir(exp.id).mkdir(parents=True, exist_ok=True)
                (store.exp_dir(exp.id) / "error.log").write_text(traceback.format_exc())
                result = {**base, "status": "failed", "error": msg}
            result["wall_seconds"] = time.perf_counter() - t0
            result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            store.write_result(exp.id, result)
            if ckpt is not None and ckpt.exists():
                ckpt.unlink()  # complete: model.pt holds the best weights
            bar.remove_task(task)
            status = result["status"]
            {"ok": summary.done, "failed": summary.failed}.get(status, summary.skipped).append(exp.id)
            line = _status_line(result)
            bar.console.print(f"{n}/{len(exps)} {exp.id}: {line}")
            bar.advance(overall)
    summary.seconds = time.perf_counter() - t_start
    run_info["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_info["wall_seconds"] = summary.seconds
    store.write_run(run_info)
    if report:
        from .report import render_report

        summary.report = render_report(store.root)
    return summary


def _status_line(r: dict) -> str:
    if r["status"] == "failed":
        return f"[red]FAILED[/] {r['error'].splitlines()[0]}"
    if r["status"] == "skipped":
        return f"[yellow]skipped[/] {r.get('reason', '')}"
    m = r.get("metrics", {}).get("test") or r.get("metrics", {}).get("sample") or {}
    acc = f"test acc {m['accuracy']:.4f} [{m['accuracy_ci'][0]:.3f}, {m['accuracy_ci'][1]:.3f}]" if m else ""
    return f"[green]ok[/] {acc} ({r['wall_seconds']:.1f} s)"
