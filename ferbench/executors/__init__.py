"""Where a run's experiments execute.

``local`` (the default) runs them one after another in this process. ``ray`` hands model
experiments to a Ray cluster (:mod:`ferbench.executors.ray`, the ``ferbench[ray]`` extra) and runs
LLM experiments in the driver. Either way the runner writes every outcome through the result store,
so the files, the reuse rules, the report and the exit code do not depend on the executor.
"""
from __future__ import annotations

from ..errors import FerbenchError
from .local import LocalExecutor, Reporter  # noqa: F401 - re-exported


def make_executor(name: str, address: str | None = None, console=None, device: str = "auto"):
    if name == "local":
        if address:
            raise FerbenchError("--address names a Ray cluster; use it with --executor ray")
        return LocalExecutor()
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(address=address, console=console, device=device)
    raise FerbenchError(f"unknown executor {name!r}; expected local or ray")
