"""Token and cost estimates, and the hard ``--max-cost`` cap.

Every request reserves its worst-case cost (estimated prompt tokens plus the whole completion
budget) before it is sent; the reservation becomes the real cost when the usage comes back, or
stays counted when a request may have been billed without telling (a timeout). So the sum of
what was spent and what is in flight never passes the cap, whatever the concurrency.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

from ..errors import FerbenchError
from ..limits import MAX_COST_USD, check_number
from ..schema.llm import EndpointConfig
from .providers import provider

_REASONING = re.compile(r"(^|[/:])(o\d|gpt-5|.*reason|.*think|deepseek-r1|qwq)", re.IGNORECASE)
# Completion tokens a typical one-word answer uses, reasoning included, when the suite gives no
# expected_completion_tokens: a rule of thumb for estimates, always shown as an assumption.
_ANSWER_TOKENS = 8
_REASONING_TOKENS = {"none": 0, "minimal": 64, "low": 256, "medium": 768, "high": 2048, "xhigh": 4096, "max": 8192}


def looks_like_reasoning(model: str) -> bool:
    """Model names of reasoning models (o-series, gpt-5, *-thinking, DeepSeek-R1, QwQ ...), for estimates only."""
    return bool(_REASONING.search(model))


def image_tokens(size: int, detail: str) -> int:
    """OpenAI's documented count for a ``size`` x ``size`` image: 85 at low detail, else 85 + 170 per 512-px tile
    (after fitting into 2048 px and scaling the short side down to 768 px; small images are not upscaled)."""
    if detail == "low":
        return 85
    s = min(size, 2048)
    s = min(s, 768)
    tiles = math.ceil(s / 512) ** 2
    return 85 + 170 * tiles


def prompt_tokens_estimate(prompt: str, image_size: int, detail: str) -> int:
    # ~4 characters per token for English text, rounded up, plus the chat framing
    return math.ceil(len(prompt) / 4) + 12 + image_tokens(image_size, detail)


def expected_completion_tokens(ep: EndpointConfig) -> tuple[int, str]:
    """(tokens, how it was chosen) for an answer, reasoning included, capped by the budget."""
    if ep.expected_completion_tokens:
        return min(ep.expected_completion_tokens, ep.max_completion_tokens), "expected_completion_tokens"
    effort = ep.reasoning_effort or ("medium" if looks_like_reasoning(ep.model) else "none")
    n = _ANSWER_TOKENS + _REASONING_TOKENS[effort]
    why = ("a one-word answer" if effort == "none" else
           f"a one-word answer after ~{_REASONING_TOKENS[effort]} reasoning tokens (effort {effort}"
           + (", assumed from the model name" if ep.reasoning_effort is None else "") + ")")
    return min(n, ep.max_completion_tokens), f"assumed: {why}"


def cost_usd(ep: EndpointConfig, prompt_tokens: int, completion_tokens: int, *, batch: bool = False) -> float | None:
    """USD at the endpoint's list prices (times batch_price_factor for Batch API requests); None if unpriced."""
    if not ep.priced:
        return None
    factor = ep.batch_price_factor if batch else 1.0
    return factor * (ep.price_input_per_1m * prompt_tokens + ep.price_output_per_1m * completion_tokens) / 1e6


def check_max_cost(llm_experiments, max_cost: float | None) -> None:
    """Refuse a ``--max-cost`` that cannot be enforced: an endpoint without both prices would spend unseen."""
    if max_cost is None:
        return
    try:
        check_number(max_cost, "--max-cost", low=0, high=MAX_COST_USD)  # NaN would cap nothing
    except ValueError as exc:
        raise FerbenchError(str(exc)) from None
    # a local server (vLLM, Ollama ...) spends no money: it is within any cap
    unpriced = sorted({e.llm_endpoint.label or e.llm_endpoint.model for e in llm_experiments
                       if e.llm_endpoint is not None and not e.llm_endpoint.priced
                       and not provider(e.llm_endpoint.provider).local})
    if unpriced:
        raise FerbenchError(
            f"--max-cost {max_cost} cannot be enforced for LLM endpoint(s) without prices: {', '.join(unpriced)}. "
            "Give price_input_per_1m and price_output_per_1m in the suite (0 for a free local server), "
            "or run without --max-cost")


class Spend:
    """Run-wide spend under one cap, shared by every LLM experiment of a run (thread-safe).

    ``committed`` is money spent (this run, plus what earlier runs spent on the answers being resumed,
    added with :meth:`add_past`); ``reserved`` is the worst case of requests in flight.
    """

    def __init__(self, max_cost: float | None):
        self.max_cost = max_cost
        self.committed = 0.0
        self.reserved = 0.0
        self._past: dict[str, float] = {}
        self._lock = threading.Lock()

    def add_past(self, eid: str, usd: float) -> None:
        """Count once what earlier runs spent on experiment ``eid``'s resumed answers."""
        with self._lock:
            old = self._past.get(eid, 0.0)
            self._past[eid] = usd
            self.committed += usd - old

    def reserve(self, usd: float) -> bool:
        with self._lock:
            if self.max_cost is not None and self.committed + self.reserved + usd > self.max_cost + 1e-12:
                return False
            self.reserved += usd
            return True

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            self.reserved = max(0.0, self.reserved - reserved)
            self.committed += actual

    @property
    def remaining(self) -> float | None:
        with self._lock:
            return None if self.max_cost is None else self.max_cost - self.committed - self.reserved


@dataclass
class Meter:
    """Gates and accounts the requests of one experiment (see :meth:`ferbench.llm.client.Endpoint.ask`)."""
    ep: EndpointConfig
    spend: Spend
    prompt_estimate: int
    on_spent: object = None  # callable(usd, answer) after every attempt, for the experiment's own ledger

    def __post_init__(self):
        self._lock = threading.Lock()
        self._observed = False

    def observe_prompt(self, tokens: int) -> None:
        # every image is the same size, so real counts are a better reservation than the estimate
        if tokens > 0:
            with self._lock:
                self.prompt_estimate = max(tokens, self.prompt_estimate) if self._observed else tokens
                self._observed = True

    def worst_case(self, budget: int) -> float:
        return cost_usd(self.ep, self.prompt_estimate, budget) or 0.0

    def reserve(self, budget: int):
        usd = self.worst_case(budget)
        return usd if self.spend.reserve(usd) else None

    def settle(self, hold, ans, charged: bool) -> None:
        if hold is None:
            return
        if ans is not None and ans.usage_known:
            actual = cost_usd(self.ep, ans.prompt_tokens, ans.completion_tokens) or 0.0
            self.observe_prompt(ans.prompt_tokens)
        else:
            actual = hold if charged else 0.0  # billed but unreported: assume the worst case
        self.spend.settle(hold, actual)
        if self.on_spent:
            self.on_spent(actual, ans)

