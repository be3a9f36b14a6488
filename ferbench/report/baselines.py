"""The papers' own numbers (``ferbench/baselines/<paper>.yaml``) beside the reproduced ones: headline
metrics, per-class numbers, confusion counts, every other number, and where a paper contradicts itself.

Each reported number is printed by one formatter below (``*_text``); the test that every number of the
baselines files appears in the report uses the same formatters.
"""
from __future__ import annotations

from importlib import resources

import yaml
from pydantic import ValidationError

from ..errors import FerbenchError
from ..schema.baselines import Baselines, ConfusionReported, OtherReported, PerClassReported, Reported
from ..schema.results import EvalMetrics, LLMResult, ModelResult, StudyMeta
from ..store import RunData
from .document import Bullets, Paragraph
from .format import CI, DASH, Num
from .tables import Table
from .verdicts import recipe, verdict_for

METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1",
                "macro_precision": "macro precision", "macro_recall": "macro recall",
                "weighted_precision": "weighted precision", "weighted_recall": "weighted recall"}
RELATIONS = {"=": "", "<": "< ", "<=": "≤ ", ">": "> ", ">=": "≥ ", "~": "≈ "}
RATES = ("precision", "recall", "f1", "accuracy")
MARK = "⚠"


def load_baselines(paper: str | None) -> Baselines | None:
    """The paper's baselines file, checked against :class:`~ferbench.schema.baselines.Baselines`
    (an unknown or misspelt key, a wrong type: one error naming the file and the key path)."""
    if not paper:
        return None
    f = resources.files("ferbench") / "baselines" / f"{paper}.yaml"
    if not f.is_file():
        return None
    raw = yaml.safe_load(f.read_text())
    try:
        return Baselines.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
        raise FerbenchError(f"baselines file ferbench/baselines/{paper}.yaml does not fit its format: {problems}") from None


# --- formatters: the report prints every baseline number through one of these ---------------------------

def reported_text(v: float) -> str:
    """A headline metric in percent, as the reproduced-vs-reported table prints it."""
    return Num.pct(v).text


def pct_exact(v: float, lo: int = 1, hi: int = 4) -> str:
    """A share in percent with as many decimals as the paper's number has (0.855 -> 85.5, 0.8665 -> 86.65)."""
    for d in range(lo, hi + 1):
        s = f"{100 * v:.{d}f}"
        if abs(float(s) - 100 * v) < 1e-9:
            return s
    return f"{100 * v:.{hi}f}"


def plain(v) -> str:
    """A number as written in the baselines file: 8,989 · 0.2976 · 1.8."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else f"{v:g}"


def per_class_text(e: PerClassReported) -> str:
    return RELATIONS[e.relation] + (pct_exact(e.value) if e.metric in RATES else plain(e.value))


def count_text(e: ConfusionReported) -> str:
    return plain(e.count) + (f" of {plain(e.of)}" if e.of is not None else "")


def other_text(e: OtherReported) -> str:
    v = e.value
    body = " > ".join(map(str, v)) if isinstance(v, list) else plain(v)
    return RELATIONS[e.relation] + body + (f" {e.unit}" if e.unit else "")


def timing_text(v: float) -> str:
    return Num.of(v, "{:,.0f}").text


def measured_text(x) -> str:
    if x is None:
        return DASH
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3f}"


# --- contradictions --------------------------------------------------------------------------------------

def mark(e: Reported | PerClassReported | ConfusionReported | OtherReported) -> str:
    """The marker next to a number the paper contradicts elsewhere ('' when none)."""
    return f"{MARK} {e.contradiction}" if e.contradiction else ""


def contradiction_blocks(base: Baselines) -> list:
    cs = base.contradictions
    if not cs:
        return []
    return [Paragraph(f"Each number marked {MARK} <id> in the tables below is affected by the entry of that id.",
                      strong="Where the paper contradicts itself.", style="warn"),
            Bullets([f"{MARK} {c.id}: {' '.join(c.text.split())} (where: {', '.join(c.where)})" for c in cs])]


# --- matching a paper's model name to this run's results -------------------------------------------------

def _match(run: RunData, study: StudyMeta, model: str) -> ModelResult | None:
    """The first model result of the study that is the paper's ``model`` (by registry name or label); a
    sensitivity sweep's member never stands for the paper's model."""
    return recipe(run, study, model)


def _match_llm(run: RunData, study: StudyMeta, model: str | None) -> LLMResult | None:
    return next((r for r in run.llms(study.name) if model in (None, r.label, r.config.llm_endpoint.model)), None)


def _part(r, part: str) -> EvalMetrics | None:
    return r.metrics.get(part) if r is not None else None


def _missing(r, part: str) -> str:
    if r is None:
        return "not run"
    if not r.ok:
        return r.status  # why is said once, in the study's section
    return f"no {part} partition in this run"


def _metrics_for(run: RunData, study: StudyMeta, model: str, part: str):
    """(result, its metrics on ``part``, why absent); ``part`` 'sample' means an LLM's sample."""
    r = _match_llm(run, study, model) if part == "sample" else _match(run, study, model)
    if part == "sample" and r is None:
        r = _match(run, study, model)
    m = _part(r, part)
    return r, m, None if m is not None else _missing(r, part)


# --- reproduced vs reported: headline metrics -----------------------------------------------------------

def metric_value(r: ModelResult, metric: str, part: str | None = None) -> tuple[float | None, list | None]:
    name = metric.removeprefix("val_")
    part = part or ("val" if metric.startswith("val_") else "test")
    m = r.metrics.get(part)
    if m is None or getattr(m, name, None) is None:
        return None, None
    return getattr(m, name), getattr(m, f"{name}_ci", None)


def reported_table(study: StudyMeta, run: RunData, base: Baselines) -> Table | None:
    rows = []
    for b in base.reported:
        r = _match(run, study, b.model)
        part = b.compare_split or ("val" if b.metric.startswith("val_") else "test")
        name = b.metric.removeprefix("val_")
        what = ("val " if b.metric.startswith("val_") else "") + METRIC_NAMES.get(name, name)
        source = f"{b.source} ({b.split})"
        val, ci = metric_value(r, b.metric, part) if r is not None else (None, None)
        m = _part(r, part)
        mine = f"{part}, {m.n:,} images" if m is not None else _missing(r, part)
        verdict = verdict_for(run, study, base, b)[0].text
        diff = Num(None, DASH) if val is None else Num(100 * (val - b.value), f"{100 * (val - b.value):+.2f}")
        rows.append([b.model, what, Num(100 * b.value, reported_text(b.value)), Num.pct(val), CI.of(ci),
                     diff, verdict, source, b.split_note if b.split_note is not None else b.split, mine, mark(b)])
    if not rows:
        return None
    return Table(f"{study.name}_reported", "Reproduced vs reported",
                 ["model", "metric", "reported %", "reproduced %", "95% CI", "diff (pts)", "verdict",
                  "source", "paper's images", "ferbench's images", "contradiction"], rows,
                 paper_columns=[0, 1, 2, 3, 4, 5, 6, 7])


def timing_table(study: StudyMeta, run: RunData, base: Baselines) -> Table | None:
    if not base.timing:
        return None
    rows = []
    for b in base.timing:
        r = _match(run, study, b.model)
        mine = r.timing.seconds_per_epoch if r and r.timing else None
        rows.append([b.model, Num(b.seconds_per_epoch, timing_text(b.seconds_per_epoch)),
                     Num.of(mine, "{:,.1f}"),
                     Num(None, DASH) if not mine else Num(b.seconds_per_epoch / mine,
                                                          f"{b.seconds_per_epoch / mine:,.0f}x"), b.source])
    return Table(f"{study.name}_timing", "Seconds per epoch: reported vs this run",
                 ["model", "reported s/epoch", "this run s/epoch", "reported / this run", "source"], rows,
                 "Different hardware, data sizes and profiles; the ratio shows the order of magnitude only.")


# --- per-class numbers, confusion counts, everything else -----------------------------------------------

def _holds(relation: str, mine: float, value: float) -> str:
    ops = {"<": mine < value, "<=": mine <= value, ">": mine > value, ">=": mine >= value}
    return DASH if relation not in ops else ("yes" if ops[relation] else "no")


def _per_class_value(m: EvalMetrics, metric: str, i: int):
    if metric == "accuracy":
        return m.per_class_accuracy[i]
    if metric == "support":
        return m.per_class.support[i]
    return getattr(m.per_class, metric)[i]


def per_class_numbers_table(study: StudyMeta, run: RunData, base: Baselines) -> Table | None:
    """Every per-class number the paper gives (``per_class_reported``) beside this run's."""
    rows = []
    for e in base.per_class_reported:
        part = e.compare_split or e.split
        rate = e.metric in RATES
        unit = "%" if rate else "images"
        _, m, why = _metrics_for(run, study, e.model, part)
        rep = Num(100 * e.value if rate else e.value, per_class_text(e))
        if e.class_ not in study.classes:
            why = f"class {e.class_} not in this study"
        mine = None
        if why is None:
            mine = _per_class_value(m, e.metric, study.classes.index(e.class_))
            if mine is not None and rate:
                mine = 100 * mine
        rel = e.relation
        diff = Num(None, DASH) if mine is None or rel not in ("=", "~") else \
            Num(mine - rep.value, f"{mine - rep.value:+.2f}" if rate else f"{mine - rep.value:+,}")
        rows.append([e.model, e.class_, f"{e.metric} ({unit})", rep,
                     Num(None, why or DASH) if mine is None else Num(mine, f"{mine:.2f}" if rate else f"{mine:,}"),
                     diff, DASH if mine is None else _holds(rel, mine, rep.value), e.source,
                     e.split + (f" ({e.split_note})" if e.split_note else ""),
                     f"{part}, {m.n:,} images" if m is not None else DASH, mark(e)])
    if not rows:
        return None
    return Table(f"{study.name}_per_class_numbers", "Per-class numbers: reported vs reproduced",
                 ["model", "class", "metric", "reported", "reproduced", "diff", "bound holds?", "source",
                  "paper's split", "ferbench's images", "contradiction"], rows,
                 "Accuracy of a class is the share of its images classified correctly (its recall), as the "
                 "papers word it. A bound ('< 70', '≥ 70') is checked rather than differenced.",
                 paper_columns=[0, 1, 2, 3, 4, 5, 6, 7])


def _confusion_count(m: EvalMetrics, classes: list[str],
                     e: ConfusionReported) -> tuple[int | None, int | None, str | None]:
    """(reproduced count, images it is out of, why not)."""
    cm = m.confusion
    k = len(classes)
    idx = {c: i for i, c in enumerate(classes)}
    if e.pair is not None:
        a, b = e.pair
        if a not in idx or b not in idx:
            return None, None, "class not in this study"
        i, j = idx[a], idx[b]
        return cm[i][j] + cm[j][i], sum(cm[i]) + sum(cm[j]), None
    act, pred = e.actual, e.predicted
    if (act != "*" and act not in idx) or (pred != "*" and pred not in idx):
        return None, None, "class not in this study"
    rows = range(k) if act == "*" else [idx[act]]
    cols = range(k) if pred == "*" else [idx[pred]]
    return sum(cm[i][j] for i in rows for j in cols), sum(sum(cm[i]) for i in rows), None


def confusion_table(study: StudyMeta, run: RunData, base: Baselines) -> Table | None:
    rows = []
    for e in base.confusion_reported:
        _, m, why = _metrics_for(run, study, e.model, e.split)
        mine = of = None
        if m is not None:
            mine, of, why = _confusion_count(m, study.classes, e)
        if e.pair is not None:
            actual, predicted = f"{e.pair[0]} ↔ {e.pair[1]}", "(either way: direction unstated)"
        else:
            actual, predicted = ("any class" if e.actual == "*" else e.actual,
                                 "any class" if e.predicted == "*" else e.predicted)
        rows.append([e.model, actual, predicted, Num(e.count, count_text(e)),
                     Num(None, why or DASH) if mine is None else Num(mine, f"{mine:,}"),
                     Num(None, DASH) if of is None else Num(of, f"{of:,}"), e.source, e.split, mark(e)])
    if not rows:
        return None
    return Table(f"{study.name}_confusion_reported", "Confusion-matrix counts: reported vs reproduced",
                 ["model", "true class", "predicted", "reported", "reproduced", "out of (this run)", "source",
                  "split", "contradiction"], rows,
                 "Counts, not rates: compare them with the size of each run's partition (a profile that caps "
                 "images per class shrinks every count).", paper_columns=[0, 1, 2, 3, 4, 5, 6])


def _history(r: ModelResult, key: str, sel: str):
    h = r.history
    if not h:
        return None
    if sel == "first":
        rec = h[0]
    elif sel == "last":
        rec = h[-1]
    elif sel == "best":
        best = r.training.best_epoch if r.training else None
        rec = next((x for x in h if x.epoch == best), None)
        if rec is None:
            vals = [getattr(x, key) for x in h if getattr(x, key) is not None]
            return max(vals) if vals else None
    else:
        rec = next((x for x in h if x.epoch == int(sel)), None)
    return getattr(rec, key, None) if rec is not None else None


def resolve(path: str, e: OtherReported, run: RunData, study: StudyMeta) -> tuple[object, str | None]:
    """(this run's value at ``path``, why there is none)."""
    if path.startswith("data.counts."):
        usage, what = path.split(".")[2:4]
        counts = run.header.data.counts
        parts = list(counts.values()) if usage == "all" else [counts.get(usage, {})]
        return sum(sum(p.values()) if what == "total" else p.get(what, 0) for p in parts), None
    if path == "llm.sample.n":
        r = _match_llm(run, study, e.model)
        if r is None:
            return None, "no LLM in this run"
        if "sample" in r.metrics:
            return r.metrics["sample"].n, None
        if r.sample and r.sample.ids:
            return len(r.sample.ids), None
        return None, _missing(r, "sample")
    if path.startswith("rank("):
        metric = path[5:-1]
        names = e.value
        got = []
        for n in names:
            r = _match(run, study, n)
            v = _lookup(r, metric) if r is not None else None
            if v is None:
                return None, f"{n} not scored in this run"
            got.append((v, n))
        return [n for _, n in sorted(got, key=lambda t: -t[0])], None
    r = _match(run, study, e.model) if e.model else None
    if r is None:
        return None, "not run" if e.model else "needs a model"
    v = _lookup(r, path)
    return v, None if v is not None else f"{path}: not recorded"


def _lookup(r: ModelResult, path: str):
    head, _, rest = path.partition(".")
    if head == "history":
        key, _, sel = rest.partition("@")
        return _history(r, key, sel or "last")
    if head == "metrics":
        part, _, key = rest.partition(".")
        m = r.metrics.get(part)
        return getattr(m, key, None) if m is not None else None
    obj = {"training": r.training, "timing": r.timing, "parameters": r.parameters}.get(head)
    return getattr(obj, rest, None) if obj is not None else None


def other_table(study: StudyMeta, run: RunData, base: Baselines) -> Table | None:
    rows = []
    for e in base.other_reported:
        path = e.compare
        rel = e.relation
        if not path:
            mine, cell, holds = None, "not comparable", DASH
        else:
            mine, why = resolve(path, e, run, study)
            if mine is None:
                cell, holds = why, DASH
            elif isinstance(mine, list):
                cell = " > ".join(mine)
                holds = "same order" if mine == e.value else "different order"
            else:
                cell, holds = measured_text(mine), _holds(rel, mine, e.value)
                if rel == "=" and isinstance(e.value, int) and isinstance(mine, int):
                    holds = "same" if mine == e.value else "differs"
        value = e.value if isinstance(e.value, (int, float)) and not isinstance(e.value, bool) else None
        rows.append([e.quantity, e.model if e.model is not None else DASH, Num(value, other_text(e)),
                     Num(mine if isinstance(mine, (int, float)) else None, cell), holds, path or DASH,
                     e.source + (f" ({e.split})" if e.split else ""), mark(e)])
    if not rows:
        return None
    return Table(f"{study.name}_other_reported", "Every other number the paper reports",
                 ["quantity", "model", "reported", "this run", "check", "compared with", "source", "contradiction"],
                 rows, "'compared with' names where the value sits in this run's results; 'not comparable': the "
                       "paper's number has no counterpart ferbench can measure (e.g. a prediction on an image "
                       "that is not published).")
