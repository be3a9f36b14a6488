"""Paper-style reports: build a context from a run directory, render Jinja templates to
report.md and a self-contained report.html (figures embedded), export tables as CSV and LaTeX.
"""
from __future__ import annotations

import base64
import csv
import io
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np
import yaml
from tabulate import tabulate

from . import figures
from .atomic import atomic_write_text
from .store import RunData, load_run

METRIC_NAMES = {"accuracy": "test accuracy", "val_accuracy": "val accuracy", "macro_f1": "macro F1",
                "weighted_f1": "weighted F1", "val_macro_f1": "val macro F1", "val_weighted_f1": "val weighted F1"}


def load_baselines(paper: str | None) -> dict | None:
    if not paper:
        return None
    f = resources.files("ferbench") / "baselines" / f"{paper}.yaml"
    return yaml.safe_load(f.read_text()) if f.is_file() else None


def _pct(x, digits=2):
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _ci(ci):
    return "–" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _num(x, fmt="{:.3f}"):
    return "–" if x is None else fmt.format(x)


class Table:
    """A table for both templates and the CSV / LaTeX exports."""

    def __init__(self, key: str, title: str, headers: list[str], rows: list[list], note: str = ""):
        self.key, self.title, self.headers, self.rows, self.note = key, title, headers, rows, note

    def markdown(self) -> str:
        esc = [[str(c).replace("|", "\\|") for c in r] for r in self.rows]
        return tabulate(esc, headers=self.headers, tablefmt="github", disable_numparse=True)

    def latex(self) -> str:
        return tabulate(self.rows, headers=self.headers, tablefmt="latex_booktabs", disable_numparse=True)

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.headers)
        w.writerows(self.rows)
        return buf.getvalue()


def _metric_value(r: dict, metric: str) -> tuple[float | None, list | None]:
    part, name = ("val", metric[4:]) if metric.startswith("val_") else ("test", metric)
    m = r.get("metrics", {}).get(part)
    if not m or name not in m:
        return None, None
    return m[name], m.get(f"{name}_ci")


def _study_tables(study: dict, results: list[dict], run: RunData, fig_dir: Path) -> dict:
    classes = study["classes"]
    ok = [r for r in results if r["status"] == "ok" and r["kind"] == "train"]
    tables, figs = [], []
    rows = []
    for r in results:
        if r["kind"] != "train":
            continue
        if r["status"] != "ok":
            rows.append([r["label"] + (f" (fold {r['fold']})" if r.get("fold") is not None else ""),
                         r["status"].upper()] + ["–"] * 10)
            continue
        te, va = r["metrics"].get("test", {}), r["metrics"].get("val", {})
        t = r["timing"]
        rows.append([r["label"] + (f" (fold {r['fold'] + 1})" if r.get("fold") is not None else "")
                     + (f" seed {r['seed']}" if r.get("seed") else ""),
                     _pct(te.get("accuracy")), _ci(te.get("accuracy_ci")), _num(te.get("macro_f1")),
                     _num(te.get("weighted_f1")), _pct(te.get("top2_accuracy"), 1), _pct(va.get("accuracy")),
                     f"{r['parameters']['total'] / 1e6:.2f}M", _num(t.get("seconds_per_epoch"), "{:.1f}"),
                     _num(t.get("train_seconds"), "{:.0f}"), _num(t["inference"]["ms_per_image"], "{:.3f}"),
                     str(r["training"].get("epochs_run", "–"))])
    if rows:
        tables.append(Table(f"{study['name']}_accuracy", "Accuracy (Table 1 style)",
                            ["model", "test acc %", "95% CI (Wilson)", "macro F1", "weighted F1", "top-2 %",
                             "val acc %", "params", "s/epoch", "train s", "ms/image", "epochs"], rows))
    if ok:
        tables.append(Table(f"{study['name']}_f1", "Per-class F1 on test",
                            ["model", *classes, "macro", "weighted"],
                            [[r["label"] + (f" (fold {r['fold'] + 1})" if r.get("fold") is not None else ""),
                              *(_num(v, "{:.2f}") for v in r["metrics"]["test"]["per_class"]["f1"]),
                              _num(r["metrics"]["test"]["macro_f1"], "{:.3f}"),
                              _num(r["metrics"]["test"]["weighted_f1"], "{:.3f}")] for r in ok]))
    folds = [r for r in ok if r.get("fold") is not None]
    if folds:
        by = {}
        for r in folds:
            by.setdefault(r["label"], []).append(r["metrics"]["val"]["accuracy"])
        tables.append(Table(f"{study['name']}_cv", "Cross-validation (val accuracy over folds)",
                            ["model", "folds", "mean %", "sd %"],
                            [[k, str(len(v)), _pct(np.mean(v)), _pct(np.std(v, ddof=1) if len(v) > 1 else None)]
                             for k, v in by.items()]))
    seeded = {}
    for r in ok:
        if r.get("fold") is None:
            seeded.setdefault(r["label"], []).append(r["metrics"]["test"]["accuracy"])
    if any(len(v) > 1 for v in seeded.values()):
        tables.append(Table(f"{study['name']}_seeds", "Across training seeds (test accuracy)",
                            ["model", "seeds", "mean %", "sd %", "min %", "max %"],
                            [[k, str(len(v)), _pct(np.mean(v)), _pct(np.std(v, ddof=1) if len(v) > 1 else None),
                              _pct(min(v)), _pct(max(v))] for k, v in seeded.items()],
                            "The spread across seeds is training noise that a single-run comparison hides."))
    # figures: curves, confusion matrices, P/R/F1 bars, Grad-CAM
    if ok:
        figs.append(("Training and validation curves", figures.curves(
            {r["label"] + (f" f{r['fold'] + 1}" if r.get("fold") is not None else ""): r["history"] for r in ok},
            fig_dir / f"{study['name']}_curves.png", study["name"])))
    for r in ok:
        cm = np.array(r["metrics"]["test"]["confusion"])
        figs.append((f"Confusion matrix: {r['label']}", figures.confusion(
            cm, classes, fig_dir / f"{r['id']}_cm.png", f"{r['label']} (test, counts; colour = row %)")))
        figs.append((f"Per-class precision / recall / F1: {r['label']}", figures.prf_bars(
            r["metrics"]["test"]["per_class"], classes, fig_dir / f"{r['id']}_prf.png", r["label"])))
        gc = run.root / r["id"] / "gradcam.png"
        if gc.exists():
            figs.append((f"Grad-CAM: {r['label']}", gc))
    return {"tables": tables, "figures": figs}


def _reported_table(study: dict, results: list[dict], base: dict) -> Table | None:
    rows = []
    for b in base.get("reported", []):
        match = [r for r in results if r["status"] == "ok" and r["kind"] == "train"
                 and b["model"] in (r["model"], r["label"])]
        if not match:
            rows.append([b["model"], METRIC_NAMES.get(b["metric"], b["metric"]), _pct(b["value"]), "not run",
                         "–", "–", "–", f"{b['source']} ({b['split']})"])
            continue
        r = match[0]
        val, ci = _metric_value(r, b["metric"])
        inside = "–" if not ci else ("yes" if ci[0] <= b["value"] <= ci[1] else "no")
        rows.append([b["model"], METRIC_NAMES.get(b["metric"], b["metric"]), _pct(b["value"]), _pct(val),
                     _ci(ci), "–" if val is None else f"{100 * (val - b['value']):+.2f}", inside,
                     f"{b['source']} ({b['split']})"])
    if not rows:
        return None
    return Table(f"{study['name']}_reported", "Reproduced vs reported",
                 ["model", "metric", "reported %", "reproduced %", "95% CI", "diff (pts)", "reported inside CI?",
                  "source"], rows)


def _baseline_extras(study: dict, results: list[dict], base: dict) -> list[Table]:
    """Reported per-epoch times and per-class P/R/F1 beside the measured ones, where a paper gives them."""
    ok = {r["model"]: r for r in results if r["status"] == "ok" and r["kind"] == "train"}
    out = []
    if base.get("timing"):
        rows = []
        for b in base["timing"]:
            r = ok.get(b["model"])
            mine = r["timing"].get("seconds_per_epoch") if r else None
            rows.append([b["model"], _num(b["seconds_per_epoch"], "{:,.0f}"), _num(mine, "{:,.1f}"),
                         "–" if not mine else f"{b['seconds_per_epoch'] / mine:,.0f}x", b["source"]])
        out.append(Table(f"{study['name']}_timing", "Seconds per epoch: reported vs this run",
                         ["model", "reported s/epoch", "this run s/epoch", "reported / this run", "source"], rows,
                         "Different hardware, data sizes and profiles; the ratio shows the order of magnitude only."))
    pc = base.get("per_class")
    if pc:
        rows = []
        for r in ok.values():
            part = r["metrics"].get(pc.get("split", "test"))
            if not part:
                continue
            classes = study["classes"]
            for cls, (p_, r_, f_) in pc["classes"].items():
                if cls in classes:
                    i = classes.index(cls)
                    mine = [part["per_class"][k][i] for k in ("precision", "recall", "f1")]
                    rows.append([r["label"], cls, f"{p_:.2f} / {r_:.2f} / {f_:.2f}",
                                 " / ".join(f"{v:.2f}" for v in mine)])
        if rows:
            out.append(Table(f"{study['name']}_per_class_reported",
                             f"Per-class precision / recall / F1 on {pc.get('split', 'test')}: reported vs reproduced",
                             ["model", "class", f"reported ({pc['source']})", "reproduced"], rows))
    return out


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def build_context(run: RunData) -> dict:
    fig_dir = run.root / "figures"
    info = run.run
    studies = []
    for st in info.get("studies", []):
        results = [r for r in run.results if r.get("study") == st["name"]]
        base = load_baselines(st.get("paper"))
        parts = _study_tables(st, results, run, fig_dir)
        if base:
            t = _reported_table(st, results, base)
            if t:
                parts["tables"].insert(1, t)
            parts["tables"][2:2] = _baseline_extras(st, results, base)
        from .llm.report import llm_section

        llm = llm_section(st, results, run, fig_dir, base)
        if llm:
            parts["tables"] = llm["tables"] + parts["tables"]
            parts["figures"] = llm["figures"] + parts["figures"]
        deviations = sorted({d for r in results for d in r.get("deviations", [])})
        studies.append({**st, "results": results, "baseline": base, "deviations": deviations,
                        "failed": [r for r in results if r["status"] == "failed"],
                        "skipped": [r for r in results if r["status"] == "skipped"],
                        "llm": llm, **parts})
    counts = info["data"]["counts"]
    classes = list(next(iter(counts.values())).keys()) if counts else []
    run_figs = [("Class distribution", figures.class_distribution(counts, classes, fig_dir / "class_distribution.png"))]
    if (run.root / "figures" / "samples.png").exists():
        run_figs.append(("Sample images per class", run.root / "figures" / "samples.png"))
    return {"run": info, "studies": studies, "run_figures": run_figs,
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_ok": sum(r["status"] == "ok" for r in run.results),
            "n_failed": sum(r["status"] == "failed" for r in run.results),
            "n_skipped": sum(r["status"] == "skipped" for r in run.results)}


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ferbench", "templates"), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["embed"] = _embed
    env.filters["rel"] = lambda p, root: Path(p).relative_to(root).as_posix()
    env.filters["pct"] = _pct
    return env


def render_report(run_dir: Path | str) -> Path:
    """Render report.md, report.html and tables/ for a run directory; returns the .md path."""
    run = load_run(run_dir)
    ctx = build_context(run)
    root = run.root
    tdir = root / "tables"
    for st in ctx["studies"]:
        for t in st["tables"]:
            atomic_write_text(tdir / f"{t.key}.csv", t.csv())
            atomic_write_text(tdir / f"{t.key}.tex", t.latex())
    md = _env(False).get_template("report.md.j2").render(**ctx, root=root)
    html = _env(True).get_template("report.html.j2").render(**ctx, root=root)
    atomic_write_text(root / "report.md", md)
    atomic_write_text(root / "report.html", html)
    return root / "report.md"
