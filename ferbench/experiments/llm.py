"""``kind: llm``: ask one LLM endpoint about the study's sample (see :mod:`ferbench.llm.query`)."""
from __future__ import annotations

from ..schema.experiment import LLMExperiment
from .context import Context, Outcome


def run_llm(exp: LLMExperiment, ctx: Context) -> Outcome:
    from ..llm.query import run_llm_experiment

    res = run_llm_experiment(exp, ctx.split, ctx.store, console=ctx.console, options=ctx.options.llm)
    status, error, reason = res.pop("status", "ok"), res.pop("error", None), res.pop("reason", None)
    written = ["predictions.csv"] if "metrics" in res else []
    return Outcome(res, status=status, error=error, reason=reason, written=written)
