"""A verdict for every headline number a paper reports (``reported`` in its baselines file): within the
reproduction's 95 % CI, outside it (by how many points and CI half-widths), or not comparable (why);
and, for a study run with ``--sensitivity``, which single unstated setting (if any) brings the
reproduction within the CI.

A number is judged only against a run at the published settings (the ``paper`` profile, no command-line
override) and against the recipe's result, never a sweep's member.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..schema.baselines import Baselines, Reported
from ..schema.results import ModelResult, StudyMeta
from ..store import RunData
from .format import CI, DASH, Num
from .tables import Table

Kind = Literal["within", "outside", "not comparable"]


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    text: str
    points: float | None = None  # reproduced - paper, percentage points
    half_widths: float | None = None  # |reproduced - paper| in half-widths of the reproduction's 95 % CI


def judge(paper: float, value: float | None, ci, why_not: str | None = None) -> Verdict:
    """The verdict on ``paper`` (a share) given the reproduced ``value`` and its 95 % ``ci``.

    >>> judge(0.5972, 0.5205, (0.509, 0.532)).text
    'outside the 95% CI: 7.67 pts below (6.7 CI half-widths)'
    """
    if why_not:
        return Verdict("not comparable", f"not comparable: {why_not}")
    if value is None or not ci:
        return Verdict("not comparable", "not comparable: no reproduced value with a CI")
    pts = 100 * (value - paper)
    half = 100 * (ci[1] - ci[0]) / 2
    n = abs(pts) / half if half > 0 else math.inf
    if ci[0] <= paper <= ci[1]:
        return Verdict("within", f"within the 95% CI ({pts:+.2f} pts)", pts, n)
    side = "below" if pts < 0 else "above"
    return Verdict("outside", f"outside the 95% CI: {abs(pts):.2f} pts {side} ({n:.1f} CI half-widths)", pts, n)


def is_variant(r) -> bool:
    """A sensitivity sweep's member (not the recipe)."""
    return getattr(r.config, "variant", None) is not None


def recipe(run: RunData, study: StudyMeta, model: str) -> ModelResult | None:
    """The recipe's result for the paper's ``model`` (registry name or label), never a sweep's member."""
    return next((r for r in run.models(study.name) if model in (r.model, r.label) and not is_variant(r)), None)


def part_of(b: Reported) -> str:
    return b.compare_split or ("val" if b.metric.startswith("val_") else "test")


def value_of(r: ModelResult | None, b: Reported) -> tuple[float | None, list | None]:
    m = r.metrics.get(part_of(b)) if r is not None else None
    name = b.metric.removeprefix("val_")
    if m is None or getattr(m, name, None) is None:
        return None, None
    return getattr(m, name), getattr(m, f"{name}_ci", None)


def not_comparable(run: RunData, study: StudyMeta, base: Baselines, b: Reported, r) -> str | None:
    """Why the paper's number cannot be judged against this run's, or None."""
    h = run.header
    if h.profile != "paper":
        return f"the {h.profile} profile, not the published settings"
    if h.overrides:
        return "command-line overrides (" + ", ".join(f"--{k}" for k in h.overrides) + ")"
    if r is None:
        other = next((x for x in run.of_study(study.name) if b.model in (getattr(x, "model", None), x.label)), None)
        return "not run" if other is None else f"the experiment {other.status}"
    if b.compare_split and b.compare_split != b.split:
        return f"the paper's {b.split} number; this study has no {b.split} partition (ferbench's {b.compare_split})"
    if b.split == "sample":
        return "a number on the paper's small sample, not on a test set"
    if base.leaky and not study.leaky:
        return "the paper's number comes from a leaky evaluation; this study is the leak-free one"
    return None


def verdict_for(run: RunData, study: StudyMeta, base: Baselines, b: Reported) -> tuple[Verdict, ModelResult | None]:
    r = recipe(run, study, b.model)
    val, ci = value_of(r, b)
    v = judge(b.value, val, ci, not_comparable(run, study, base, b, r))
    if v.kind != "not comparable" and study.leaky:
        v = Verdict(v.kind, v.text + "; both numbers leak (augment-then-split)", v.points, v.half_widths)
    return v, r


def _unrun_rows(studies: list[StudyMeta], load) -> list[list]:
    """Rows for the papers no study of the run reproduces: every number 'not comparable: not run'."""
    from ..schema.suite import STUDY_NAMES

    rows = []
    for p in [p for p in STUDY_NAMES if p not in {st.paper for st in studies}]:
        for b in load(p).reported:
            name = b.metric.removeprefix("val_")
            rows.append([f"({p})", b.model, ("val " if b.metric.startswith("val_") else "") + name, Num.pct(b.value),
                         Num.pct(None), CI.of(None), "not comparable", Num.of(None), Num.of(None),
                         "not comparable: no study of this paper in this run", Num.of(None), DASH])
    return rows


def verdicts_table(run: RunData, studies: list[StudyMeta], load, every_paper: bool = False) -> Table | None:
    """One row per headline number of every study's paper: the run-level summary (``tables/verdicts.csv``);
    ``every_paper`` adds the papers no study of the run covers (``ferbench report RUN --verdicts``)."""
    rows = []
    for st in studies:
        base = load(st.paper) if st.paper else None
        for b in base.reported if base else []:
            v, r = verdict_for(run, st, base, b)
            val, ci = value_of(r, b)
            name = b.metric.removeprefix("val_")
            rows.append([st.name, b.model, ("val " if b.metric.startswith("val_") else "") + name,
                         Num.pct(b.value), Num.pct(val), CI.of(ci), v.kind,
                         Num.of(v.points, "{:+.2f}"), Num.of(v.half_widths, "{:.1f}"), v.text,
                         Num.of(r.wall_seconds if r is not None else None, "{:,.0f}"),
                         f"{part_of(b)}, {r.metrics[part_of(b)].n:,} images" if val is not None else DASH])
    rows += _unrun_rows(studies, load) if every_paper else []
    if not rows:
        return None
    return Table("verdicts", "Verdicts: every headline number the papers report, against this run",
                 ["study", "model", "metric", "paper %", "ferbench %", "95% CI", "verdict", "diff (pts)",
                  "CI half-widths", "why", "wall s", "ferbench's images"], rows,
                 "Within: the paper's number lies in the reproduction's 95% CI. Outside: by the difference in "
                 "points and in half-widths of that CI. Not comparable: the reason. Judged only at the paper "
                 "profile without overrides, against the recipe (never a sensitivity sweep's member).",
                 paper_columns=[0, 1, 2, 3, 4, 5, 6, 7, 8])


def _variant_line(r: ModelResult, b: Reported) -> tuple[str, Verdict]:
    val, ci = value_of(r, b)
    return r.config.variant.text, judge(b.value, val, ci)


def sensitivity_table(study: StudyMeta, run: RunData, base: Baselines) -> Table | None:
    """Per reported number with a sweep in this run: 'reproduced by X' (the paper's number inside X's
    CI) or 'not reproduced; closest: X (value, gap)'."""
    sweep = [r for r in run.models(study.name) if is_variant(r)]
    rows = []
    for b in base.reported:
        v, r = verdict_for(run, study, base, b)
        mine = [x for x in sweep if r is not None and x.config.variant.of == r.label]
        if not mine or v.kind == "not comparable":
            continue
        tried = sorted((_variant_line(x, b) + (x,) for x in mine), key=lambda t: abs(t[1].points or math.inf))
        hits = [name for name, j, _ in tried if j.kind == "within"]
        if v.kind == "within":
            text = "reproduced by the recipe" + (f"; also by {', '.join(hits)}" if hits else "")
        elif hits:
            text = "reproduced by " + ", ".join(hits)
        else:
            name, j, x = tried[0]
            val, _ = value_of(x, b)
            text = (f"not reproduced; closest: {name} ({100 * val:.2f} %, {j.points:+.2f} pts, "
                    f"{j.half_widths:.1f} CI half-widths)") if val is not None else "not reproduced"
        val, ci = value_of(r, b)
        rows.append([b.model, b.metric, Num.pct(b.value), Num.pct(val), CI.of(ci), text,
                     "; ".join(f"{n}: {j.text}" for n, j, _ in tried)])
    if not rows:
        return None
    return Table(f"{study.name}_sensitivity", "Sensitivity: which unstated setting reproduces the paper's number",
                 ["model", "metric", "paper %", "recipe %", "recipe 95% CI", "verdict", "each setting tried"], rows,
                 "One setting the paper is silent or vague on changed at a time from the study's recipe "
                 "(ferbench run --sensitivity); 'reproduced by X' means the paper's number lies in X's 95% CI. "
                 "Several settings tried on one test set: a hit can be chance.", paper_columns=[0, 1, 2, 3, 4, 5])
