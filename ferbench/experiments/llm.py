"""``kind: llm``: ask one LLM endpoint about the study's sample (see :mod:`ferbench.llm.query`)."""
from __future__ import annotations

from ..data.splits import SplitData
from ..schema.experiment import LLMExperiment
from ..store import RunStore
from .context import Context, ExperimentKind, Outcome, RunOptions


def run_llm(exp: LLMExperiment, ctx: Context) -> Outcome:
    from ..llm.query import run_llm_experiment

    res = run_llm_experiment(exp, ctx.split, ctx.store, console=ctx.console, options=ctx.options.llm,
                             dry_run=ctx.options.dry_run)
    fields = dict(res.fields)  # the typed fields themselves: the store's result validation takes them as they are
    if res.deviations is not None:
        fields["deviations"] = res.deviations
    return Outcome(fields, status=res.status, error=res.error, reason=res.reason, predictions=res.predictions,
                   arrays={"sample_images": res.images} if res.images is not None else {})


def _preflight(exps: list[LLMExperiment], options: RunOptions) -> None:
    if options.llm is not None:
        from ..llm.cost import check_max_cost

        check_max_cost(exps, options.llm.max_cost)  # an unenforceable cap fails before anything is trained


def _prepare(store: RunStore, exps: list[LLMExperiment], options: RunOptions) -> None:
    if options.llm is not None:
        options.llm.preload_spend(store, exps)  # what earlier runs spent counts against --max-cost


def _estimate(exp: LLMExperiment, split: SplitData) -> dict:
    from ..llm.query import estimate_llm_experiment, strategy_of

    strat, sopts = strategy_of(exp, split.classes)
    asked = strat.ask(sopts, ["0"])  # the plan shows what would be asked (one image a request)
    prompt = "each image's own prompt from the manifest" if exp.llm.prompt == "manifest" else asked.prompt
    return {**estimate_llm_experiment(exp, split).model_dump(), "prompt": prompt,
            "response_format": asked.response_format, "strategy": strat.name}


LLM = ExperimentKind("llm", run_llm, preflight=_preflight, prepare=_prepare,
                     forced=lambda exp, options: bool(options.llm is not None and options.llm.refresh),
                     estimate=_estimate)
