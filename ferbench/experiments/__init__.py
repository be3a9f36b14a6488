"""Experiment kinds (train, load, clip, llm), each one :class:`ExperimentKind` in one table.

A kind's ``run`` computes and returns an :class:`Outcome`; it writes nothing but its own resume state
(training checkpoints, the LLM answers journal). The executors' recorder (``executors/recorder.py``)
hands the outcome to the store, on this machine or, with the Ray executor, after it travelled back
from a worker. The optional hooks let a
kind take part in a run without the runner naming it: ``preflight`` (before anything runs: refuse
an unenforceable setting), ``prepare`` (under the run folder's lock, before planning), ``forced``
(re-run although a complete result is stored) and ``estimate`` (a dry run's plan-table entry).
A new kind is one module defining its ``ExperimentKind`` and one line in ``_KINDS`` below, plus its
typed experiment (``schema/experiment.py``) and result (``schema/results.py``).
"""
from __future__ import annotations

from ..registry import Table
from .clip import CLIP
from .context import Context, ExperimentKind, Outcome, RunOptions
from .llm import LLM
from .load import run_load
from .train import run_train

KINDS: Table[ExperimentKind] = Table("experiment kind")
for _kind in (ExperimentKind("train", run_train, forced=lambda exp, opts: opts.eval_only),
              ExperimentKind("load", run_load), CLIP, LLM):
    KINDS.add(_kind.name, _kind)
HANDLERS = {k.name: k.run for k in KINDS}  # kind -> run, for readers of the older table


def experiment_kind(name: str) -> ExperimentKind:
    return KINDS.get(name)


def run_experiment(exp, ctx: Context) -> Outcome:
    return KINDS.get(exp.kind).run(exp, ctx)


__all__ = ["Context", "ExperimentKind", "HANDLERS", "KINDS", "Outcome", "RunOptions", "experiment_kind",
           "run_experiment"]
