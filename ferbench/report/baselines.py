"""The papers' own numbers (``ferbench/baselines/<paper>.yaml``) beside the reproduced ones."""
from __future__ import annotations

from importlib import resources

import yaml

from ..schema.results import ModelResult, StudyMeta
from ..store import RunData
from .format import CI, DASH, Num
from .tables import Table

METRIC_NAMES = {"accuracy": "test accuracy", "val_accuracy": "val accuracy", "macro_f1": "macro F1",
                "weighted_f1": "weighted F1", "val_macro_f1": "val macro F1", "val_weighted_f1": "val weighted F1"}


def load_baselines(paper: str | None) -> dict | None:
    if not paper:
        return None
    f = resources.files("ferbench") / "baselines" / f"{paper}.yaml"
    return yaml.safe_load(f.read_text()) if f.is_file() else None


def metric_value(r: ModelResult, metric: str) -> tuple[float | None, list | None]:
    part, name = ("val", metric[4:]) if metric.startswith("val_") else ("test", metric)
    m = r.metrics.get(part)
    if m is None or not hasattr(m, name):
        return None, None
    return getattr(m, name), getattr(m, f"{name}_ci", None)


def _match(run: RunData, study: StudyMeta, model: str) -> ModelResult | None:
    """The first model result of the study that is the paper's ``model`` (by registry name or label)."""
    return next((r for r in run.models(study.name) if model in (r.model, r.label)), None)


def reported_table(study: StudyMeta, run: RunData, base: dict) -> Table | None:
    rows = []
    for b in base.get("reported", []):
        r = _match(run, study, b["model"])
        what = METRIC_NAMES.get(b["metric"], b["metric"])
        source = f"{b['source']} ({b['split']})"
        if r is None:
            rows.append([b["model"], what, Num.pct(b["value"]), "not run", CI(None, None), Num(None, DASH), DASH,
                         source])
            continue
        val, ci = metric_value(r, b["metric"])
        inside = DASH if not ci else ("yes" if ci[0] <= b["value"] <= ci[1] else "no")
        rows.append([b["model"], what, Num.pct(b["value"]), Num.pct(val), CI.of(ci),
                     Num(None, DASH) if val is None else Num(100 * (val - b["value"]), f"{100 * (val - b['value']):+.2f}"),
                     inside, source])
    if not rows:
        return None
    return Table(f"{study.name}_reported", "Reproduced vs reported",
                 ["model", "metric", "reported %", "reproduced %", "95% CI", "diff (pts)", "reported inside CI?",
                  "source"], rows)


def timing_table(study: StudyMeta, run: RunData, base: dict) -> Table | None:
    if not base.get("timing"):
        return None
    rows = []
    for b in base["timing"]:
        r = _match(run, study, b["model"])
        mine = r.timing.seconds_per_epoch if r and r.timing else None
        rows.append([b["model"], Num.of(b["seconds_per_epoch"], "{:,.0f}"), Num.of(mine, "{:,.1f}"),
                     Num(None, DASH) if not mine else Num(b["seconds_per_epoch"] / mine,
                                                          f"{b['seconds_per_epoch'] / mine:,.0f}x"), b["source"]])
    return Table(f"{study.name}_timing", "Seconds per epoch: reported vs this run",
                 ["model", "reported s/epoch", "this run s/epoch", "reported / this run", "source"], rows,
                 "Different hardware, data sizes and profiles; the ratio shows the order of magnitude only.")


def per_class_reported_table(study: StudyMeta, run: RunData, base: dict) -> Table | None:
    pc = base.get("per_class")
    if not pc:
        return None
    rows = []
    for r in run.models(study.name):
        part = r.metrics.get(pc.get("split", "test"))
        if part is None:
            continue
        for cls, (p_, r_, f_) in pc["classes"].items():
            if cls in study.classes:
                i = study.classes.index(cls)
                mine = [getattr(part.per_class, k)[i] for k in ("precision", "recall", "f1")]
                rows.append([r.label, cls, f"{p_:.2f} / {r_:.2f} / {f_:.2f}", " / ".join(f"{v:.2f}" for v in mine)])
    if not rows:
        return None
    return Table(f"{study.name}_per_class_reported",
                 f"Per-class precision / recall / F1 on {pc.get('split', 'test')}: reported vs reproduced",
                 ["model", "class", f"reported ({pc['source']})", "reproduced"], rows)
