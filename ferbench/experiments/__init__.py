"""Running one experiment: a handler per experiment kind (train, load, llm), dispatched from one table.

A handler computes and returns an :class:`Outcome`; it writes nothing but its own resume state
(training checkpoints, the LLM answers journal). The runner hands the outcome to the store, on
this machine or, with the Ray executor, after it travelled back from a worker.
"""
from __future__ import annotations

from .context import Context, Outcome, RunOptions
from .llm import run_llm
from .load import run_load
from .train import run_train

HANDLERS = {"train": run_train, "load": run_load, "llm": run_llm}


def run_experiment(exp, ctx: Context) -> Outcome:
    return HANDLERS[exp.kind](exp, ctx)


__all__ = ["Context", "HANDLERS", "Outcome", "RunOptions", "run_experiment"]
