"""An LLM study's declared sweeps in the report: one table per endpoint and setting swept, the base first.

Each row: the variant's accuracy with its Wilson CI, the share of answers naming no class with its CI, the
agreement of repeated answers, what the variant cost (dollars, or wall seconds for an unpriced endpoint),
and the exact McNemar test against the base on the images both scored, with Holm's adjustment over the
sweep's variants (the family a reader scans for 'which difference is real'). The note gives the spread.
"""
from __future__ import annotations

import numpy as np

from ..metrics import accuracy_ci, holm, mcnemar_exact, wilson_interval
from ..schema.results import LLMResult, StudyMeta
from ..store import RunData
from .document import Paragraph, TableBlock
from .format import CI, DASH, Num, pct
from .tables import Table

ALPHA = 0.05


def is_sweep_member(r) -> bool:
    """An LLM result that is a declared sweep's variant (shown in its sweep table only)."""
    return isinstance(r, LLMResult) and r.config.variant is not None


def _scored(run: RunData, r: LLMResult) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    p = run.predictions(r.id)
    return None if p is None else (p.ids.astype(str), p.true, p.predicted)


def _cost(r: LLMResult) -> str:
    usd = r.usage.estimated_cost_usd
    return f"${usd:.4f}" if usd is not None else f"{r.wall_seconds:.1f} s (unpriced)"


def _agreement(r: LLMResult) -> str:
    rep = r.repeats
    return DASH if rep is None else f"{pct(rep.agreement_mean, 1)} % / {pct(rep.all_agree, 1)} %"


def _value(r: LLMResult, setting: str) -> str:
    text = str(r.config.sweep_value(setting))
    return ("(base) " if r.config.variant is None else "") + (text if len(text) <= 60 else text[:57] + "...")


def _rows(run: RunData, base: LLMResult, setting: str, members: list[LLMResult], k: int) -> tuple | None:
    ref = _scored(run, base)
    if ref is None:
        return None
    pos = {i: n for n, i in enumerate(ref[0])}
    rows, accs, pvals = [], [], []
    for r in [base, *members]:
        s = _scored(run, r)
        if s is None:
            continue
        ids, true, pred = s
        acc, lo, hi = accuracy_ci(true, pred)
        accs.append(acc)
        m = r.metrics["sample"]
        unparsed = m.unparsed or 0
        p = None
        common = [j for j, i in enumerate(ids) if i in pos]
        if r is not base and common:
            ib = [pos[ids[j]] for j in common]
            p = mcnemar_exact(true[common], np.where(ref[2][ib] < 0, k, ref[2][ib]),
                              np.where(pred[common] < 0, k, pred[common]))["p_value"]
            pvals.append(p)
        rows.append([_value(r, setting), Num(len(ids), f"{len(ids):,}"), Num.pct(acc), CI.of((lo, hi)),
                     Num.pct(unparsed / m.n), CI.of(wilson_interval(unparsed, m.n)), _agreement(r), _cost(r),
                     Num.p(p), p])
    return rows, accs, pvals


def _table(study: StudyMeta, run: RunData, base: LLMResult, setting: str, members: list[LLMResult],
           number: int) -> Table | None:
    out = _rows(run, base, setting, members, len(study.classes))
    if out is None:
        return None
    rows, accs, pvals = out
    adjusted = iter(holm(pvals))
    for row in rows:
        p = row.pop()
        adj = next(adjusted) if p is not None else None
        row += [Num.p(adj), DASH if adj is None else ("yes" if adj < ALPHA else "no")]
    spread = max(accs) - min(accs)
    return Table(f"{study.name}_sweep{number}_{setting}",  # a file name: the label's text stays out of it
                 f"Sweep of {setting} for {base.label}: spread {pct(spread, 1)} points",
                  [setting, "images", "acc %", "95% CI (Wilson)", "parse failures %", "95% CI",
                  "agreement (mean / all agree)", "cost (or time)", "McNemar p vs base", "Holm p", f"significant (Holm, α = {ALPHA:g})"], rows,
                 f"Each variant asks the same endpoint about the same sample images as the base, one setting changed. "
                 f"Spread: the highest minus the lowest accuracy of the {len(rows)} rows, {pct(spread, 1)} points. "
                 "Parse failures: answers naming no class, counted wrong. Agreement (repeated answers only): the "
                 "majority answer's share per image, averaged, and the share of images whose answers all agree; "
                 "such a row is scored by its majority answers. McNemar: exact two-sided test against the base on "
                 f"the images both scored; Holm p: adjusted for the {len(pvals)} comparisons of this sweep "
                 "(family-wise error rate). Cost: the endpoint's token prices; an unpriced endpoint (a local "
                 "server) shows the experiment's wall time instead (resumed or cached answers take none).",
                 paper_columns=[0, 2, 3, 4, 7, 8, 9])


def llm_sweep_blocks(study: StudyMeta, run: RunData) -> list:
    """One table per (endpoint, setting) of the study's LLM sweep with a base and a scored variant; a line for
    each variant not asked (no API key, a Batch API job still running), with its reason."""
    llms = run.llms(study.name, sweeps=True)
    scored = [r for r in llms if r.status == "ok" and "sample" in r.metrics]
    bases = {r.label: r for r in scored if not is_sweep_member(r)}
    groups: dict[tuple[str, str], list[LLMResult]] = {}
    for r in scored:
        if is_sweep_member(r) and r.config.variant.of in bases:
            groups.setdefault((r.config.variant.of, r.config.variant.setting), []).append(r)
    tables = [_table(study, run, bases[of], setting, members, g + 1)
              for g, ((of, setting), members) in enumerate(groups.items())]
    blocks: list = [TableBlock(t) for t in tables if t is not None]
    for r in llms:  # a failed one is among the study's failures already
        if is_sweep_member(r) and r.status in ("skipped", "pending"):
            blocks.append(Paragraph(f"{r.label}: {r.reason or r.status}", strong="Sweep variant not asked.",
                                    style="warn"))
    return blocks
