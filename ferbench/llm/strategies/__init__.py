"""The table of prompt strategies: how a study asks a vision LLM and how its answer is read.

Each strategy is one module (its prompt, its parse rule) and one registration here; the suite's ``llm:``
block chooses one by name (``strategy: rank``). Torch-free: the suite schema validates names against it.
"""
from __future__ import annotations

from ...registry import Table
from .base import Ask, Strategy, StrategyOptions, image_label
from .label import Label
from .rank import Rank
from .reason import ReasonThenAnswer
from .structured import Structured

_STRATEGIES: Table[Strategy] = Table("prompt strategy")


def register_strategy(s: Strategy) -> None:
    _STRATEGIES.add(s.name, s)


def list_strategies() -> list[str]:
    return _STRATEGIES.names()


def strategy(name: str) -> Strategy:
    return _STRATEGIES.get(name)


for _s in (Label(), Rank(), ReasonThenAnswer(), Structured()):
    register_strategy(_s)

__all__ = ["Ask", "Strategy", "StrategyOptions", "image_label", "list_strategies", "register_strategy", "strategy"]
