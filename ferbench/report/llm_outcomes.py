"""What became of every image each LLM was asked about, as rows with a rate and its Wilson 95% CI: answered with
a class, unparsed, refused, blocked by a content filter, cut by the budget, failed or not sent. Every row but the
first is counted wrong and kept in the denominator (:mod:`ferbench.llm.outcomes`). Then each LLM's prompt
strategy, its parse rule, images per request (with miscounts and splits), and top-1 / top-k where it ranks."""
from __future__ import annotations

from ..metrics import wilson_interval
from ..schema.results import StudyMeta
from ..store import RunData
from .format import CI, DASH, Num
from .tables import Table

_ROWS = (("answered with a class", None), ("unparsed (names no class)", "unparsed"), ("refused", "refused"),
         ("blocked by a content filter", "filtered"), ("cut by the completion budget", "truncated"),
         ("failed or not sent", "errors"))


def _scored(study: StudyMeta, run: RunData) -> list:
    return [r for r in run.llms(study.name) if "sample" in r.metrics]


def outcome_table(study: StudyMeta, run: RunData) -> Table | None:
    rows = []
    for r in _scored(study, run):
        m = r.metrics["sample"]
        counts = {f: int(getattr(m, f) or 0) for _, f in _ROWS if f}
        counts[None] = m.n - sum(counts.values())
        for name, f in _ROWS:
            k = counts[f]
            if f and not k and f != "unparsed":
                continue  # an outcome that never happened to this LLM: no row (unparsed is always shown)
            rows.append([r.label, name, Num(k, f"{k:,}/{m.n:,}"), Num.pct(k / m.n if m.n else None),
                         CI.of(wilson_interval(k, m.n)) if m.n else CI(None, None)])
    if not rows:
        return None
    return Table(f"{study.name}_llm_outcomes", "What became of each LLM request (rates with 95% CIs)",
                 ["LLM", "outcome", "images", "rate %", "95% CI (Wilson)"], rows,
                 "Every outcome but 'answered with a class' counts as a wrong answer and stays in the accuracy's "
                 "denominator. Refused: the server's refusal field, or an answer declining in words and naming no "
                 "class. Blocked: finish_reason content_filter. Rows of outcomes that did not occur are left out "
                 "(their count is 0).")


def strategy_table(study: StudyMeta, run: RunData) -> Table | None:
    rows = []
    for r in _scored(study, run):
        m, s = r.metrics["sample"], r.several
        per = s.images_per_request if s else 1
        rows.append([r.label, r.strategy or "label", Num(per, str(per)),
                     DASH if s is None else f"{s.requests:,} requests, {s.miscounts} miscounted, {s.splits} split "
                                            f"({s.split_images} images answered after a split)",
                     Num.pct(m.accuracy), Num.pct(m.top_k_accuracy) if m.top_k else Num(None, DASH),
                     r.parse_rule or "exactly one class named (results from before prompt strategies)"])
    if not rows or all(r[1] == "label" and r[2].value == 1 for r in rows):
        return None  # every LLM as before strategies: nothing to add to the prompt shown in the protocol
    k = max((r.metrics["sample"].top_k or 0 for r in _scored(study, run)), default=0)
    return Table(f"{study.name}_llm_strategies", "LLM prompt strategies and images per request",
                 ["LLM", "strategy", "images / request", "requests", "top-1 %", f"top-{k} %" if k else "top-k %",
                  "parse rule"], rows,
                 "A batch whose answer does not name each of its images exactly once is asked again once, then "
                 "split (20 -> 10 -> 5 -> 1, Lian et al. 2023); every request, miscounted ones included, is paid "
                 "and counted in the usage table.", note_column=6)
