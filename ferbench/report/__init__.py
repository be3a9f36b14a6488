"""Paper-style reports: a run folder becomes one :class:`Document` (blocks in a fixed order), rendered
to report.md and a self-contained report.html by the same template structure, with every table
also exported as CSV (plain numbers) and LaTeX (captioned booktabs floats), per-model per-class
P/R/F1 and confusion tables beside them, and references.bib with the studies' references.

Order: a summary (best model per study, each LLM against the best network), the run, then each study
in the suite's order; a study none of whose experiments produced a result is one line. Sections per
study: test accuracy of every model (trained or loaded), reproduced vs reported, per-class results,
cross-validation and seeds, the LLM comparison, timings, figures.
"""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from .. import figures
from ..atomic import atomic_write_many
from ..schema.results import StudyMeta
from ..store import RunData, load_run
from .baselines import (confusion_table, contradiction_blocks, load_baselines, other_table, per_class_numbers_table,
                        reported_table, timing_table)
from .citations import cite_text, references_bib
from .cross import cross_table
from .document import Bullets, Document, Figure, Figures, Heading, Paragraph, TableBlock
from .format import md_escape
from .llm import llm_blocks
from .protocol import protocol_baseline, protocol_table
from .study import accuracy_table, cv_table, export_tables, model_figures, per_class_table, seeds_table
from .summary import not_run_line, ran, summary_table
from .sweeps import llm_sweep_blocks
from .vlm import published_notes, vlm_table
from .tables import Table
from .verdicts import sensitivity_table, verdicts_table

__all__ = ["build_document", "render_report", "verdicts_markdown"]


def _run_blocks(run: RunData) -> list:
    h = run.header
    env = h.environment
    papers = any(st.paper for st in h.studies)
    profile = h.profile_description if (papers or h.profile != "paper") else "the suite's own settings"
    n = {s: sum(r.status == s for r in run.results) for s in ("ok", "failed", "skipped")}
    rows = [["suite file", h.suite_file], ["profile", f"{h.profile}: {profile}"],
            ["data", f"{h.data.source} (from {h.data.origin}), {h.data.images:,} images"],
            ["device", h.device + (f" ({env['gpu']})" if env.get("gpu") else "")],
            ["versions", ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())],
            ["git commit", env.get("git_commit", "–")],
            ["CPU threads", f"{h.threads.used} ({h.threads.why})" if h.threads else
             str(env.get("cpu_threads", "–"))],
            ["started / finished", f"{h.started} / {h.finished or '(in progress)'}"],
            ["experiments", f"{n['ok']} ok, {n['failed']} failed, {n['skipped']} skipped"]]
    if h.overrides:
        rows.append(["overrides", ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in h.overrides.items())])
    summary = summary_table(h.studies, run)
    verdicts = verdicts_table(run, h.studies, load_baselines)
    blocks = [Heading(1, f"ferbench report: {h.suite}"), Paragraph(h.description) if h.description else None,
              TableBlock(summary) if summary else None, TableBlock(verdicts) if verdicts else None,
              TableBlock(Table("run", "Run", ["", ""], rows))]
    if h.profile != "paper" or h.overrides:
        blocks.append(Paragraph(f"This run used the {h.profile} profile"
                                + (" with command-line overrides" if h.overrides else "")
                                + "; every study lists its deviations from the papers. Compare with reported "
                                  "numbers accordingly.", strong="Not the published settings.", style="warn"))
    for path, why in run.left_out:
        blocks.append(Paragraph(f"{path}: {why}", strong="Left out of this report:", style="fail"))
    counts = h.data.counts
    classes = list(next(iter(counts.values())).keys()) if counts else []
    from .format import Num

    blocks.append(TableBlock(Table("data_counts", "Data: images per split and class (FER2013 usage tag)",
                                   ["split", *classes, "total"],
                                   [[u, *(Num(v, f"{v:,}") for v in c.values()),
                                     Num(sum(c.values()), f"{sum(c.values()):,}")] for u, c in counts.items()])))
    fig_dir = run.root / "figures"
    figs = [Figure("Class distribution", figures.class_distribution(counts, classes, fig_dir / "class_distribution.png"),
                   "Images per class in each FER2013 split; disgust is rare everywhere.")]
    if (fig_dir / "samples.png").exists():
        figs.append(Figure("Sample images per class", fig_dir / "samples.png", "The first images of each class."))
    blocks.append(Figures(figs))
    return blocks


def _study_blocks(study: StudyMeta, run: RunData) -> list:
    fig_dir = run.root / "figures"
    base = load_baselines(study.paper)
    results = run.of_study(study.name)
    deviations = sorted({d for r in results for d in r.deviations})
    sizes = study.split_sizes
    facts = [f"split: {study.split}; sizes train {sizes['train']:,}, val {sizes['val']:,}, "
             + (f"test {sizes['test']:,}" if sizes.get("test") else "no test set (validation is reported)"),
             f"classes: {', '.join(study.classes)}"]
    if base:
        facts.append(f"paper: {cite_text(base)}")
    facts += [f"note: {n}" for n in study.notes]
    if deviations:
        facts.append("deviations from the paper in this run: " + "; ".join(deviations))
    blocks = [Heading(2, study.title or study.name, study.name),
              Paragraph(study.description) if study.description else None, Bullets(facts)]
    if study.leaky:
        blocks.append(Paragraph("Run with the paper's augment-then-split order: copies of one face are in train "
                                "and test, so val/test numbers are inflated.", strong="Leaky split.", style="leak"))
    for n in base.notes if base else []:
        blocks.append(Paragraph(n, strong="From the paper:", style="leak" if base.leaky else "warn"))
    if base:
        blocks += contradiction_blocks(base)
    tables = [accuracy_table(study, run), vlm_table(study, run), cross_table(study, run)]
    if base:
        tables += [reported_table(study, run, base), sensitivity_table(study, run, base)]
    tables += [per_class_table(study, run)]
    if base:
        tables += [per_class_numbers_table(study, run, base), confusion_table(study, run, base)]
    tables += [cv_table(study, run), seeds_table(study, run)]
    blocks += [TableBlock(t) for t in tables if t is not None] + published_notes(study, run)
    llm, llm_figs = llm_blocks(study, run, fig_dir, base)
    blocks += llm
    blocks += llm_sweep_blocks(study, run)
    if base:
        blocks += [TableBlock(t) for t in (timing_table(study, run, base), other_table(study, run, base))
                   if t is not None]
    # The protocol as published beside what ran; a study without a paper of its own (a CV companion)
    # gets the table when a paper's protocol rows name it.
    proto = base if base else protocol_baseline(study, load_baselines)
    if proto:
        table, evidence = protocol_table(study, run, proto)
        if table is not None:
            blocks.append(TableBlock(table))
        if evidence:
            blocks += [Paragraph("", strong="Evidence behind the protocol table's inferred values:"),
                       Bullets(evidence)]
    for r in results:
        if r.status == "failed":
            blocks.append(Paragraph(r.error or "", strong=f"{r.id} failed:", style="fail"))
        elif r.status == "skipped" and r.kind != "llm":  # a skipped LLM is said once, in its section
            blocks.append(Paragraph(r.reason or "", strong=f"{r.id} skipped:", style="warn"))
    figs, notes = model_figures(study, run, fig_dir)
    if figs or llm_figs:
        blocks.append(Figures(figs + llm_figs))
    return blocks + notes


def build_document(run: RunData) -> Document:
    doc = Document(f"ferbench report: {run.header.suite}")
    doc.add(*_run_blocks(run))
    metas = {st.name: st for st in run.header.studies}
    order = run.header.suite_studies or list(metas)  # the suite's order; studies this folder never ran too
    for name in order + [n for n in metas if n not in order]:
        st = metas.get(name)
        if st is None or not ran(st, run):
            doc.add(not_run_line(st, run) if st else
                    Paragraph("not selected (--only) in any run of this folder.", strong=f"{name}: not run:",
                              style="small"))
            continue
        blocks, exports = _study_blocks(st, run), export_tables(st, run)
        for t in [b.table for b in blocks if isinstance(b, TableBlock)] + exports:
            t.context = st.title or st.name  # the LaTeX caption names the study
        doc.add(*blocks)
        doc.exports += exports
    doc.add(Paragraph(f"Generated by ferbench on {datetime.now(timezone.utc).isoformat(timespec='seconds')}. "
                      "Tables are also in tables/ as CSV and LaTeX (booktabs), with per-class precision / recall / "
                      "F1 and confusion matrices of every model; figures in figures/ as PNG, PDF and SVG; the "
                      "studies' references in references.bib.", style="small"))
    return doc


def _env(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ferbench", "templates"), autoescape=html,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["embed"] = lambda p: "data:image/png;base64," + base64.b64encode(Path(p).read_bytes()).decode()
    env.filters["datauri"] = lambda b: "data:image/png;base64," + base64.b64encode(b).decode()
    env.filters["rel"] = lambda p, root: Path(p).relative_to(root).as_posix()
    env.filters["md"] = md_escape
    return env


def render_report(run_dir: Path | str) -> Path:
    """Render report.md, report.html and tables/ for a run folder; returns the .md path."""
    run = load_run(run_dir)
    doc = build_document(run)
    root = run.root
    files = {}
    for t in doc.tables + doc.exports:
        if t.key != "run":
            files[root / "tables" / f"{t.key}.csv"] = t.csv()
            files[root / "tables" / f"{t.key}.tex"] = t.latex()
    bases = [b for b in (load_baselines(st.paper) for st in run.header.studies) if b]
    if bases:
        files[root / "references.bib"] = references_bib(bases)
    md = _env(False).get_template("report.md.j2").render(doc=doc, root=root)
    html = _env(True).get_template("report.html.j2").render(doc=doc, root=root)
    files[root / "report.md"] = md
    files[root / "report.html"] = html
    atomic_write_many(files)  # all or nothing: never a report.md from one run and a report.html from another
    return root / "report.md"


def verdicts_markdown(run_dir: Path | str) -> str:
    """The run's verdict table as Markdown (``ferbench report RUN --verdicts``)."""
    run = load_run(run_dir)
    t = verdicts_table(run, run.header.studies, load_baselines, every_paper=True)
    if t is None:
        return "no study of this run has a paper's reported numbers"
    return f"{t.title}\n\n{t.markdown()}\n\n{t.note}"
