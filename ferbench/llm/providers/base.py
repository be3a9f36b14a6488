"""What a provider is: where its API root comes from, how its client is built, and what its server accepts.

Torch-free and openai-free on import (the suite schema validates provider names against the table).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import openai

# (api key, base URL or None, api_version or None, timeout, http client) -> client. The endpoint's
# fields are passed one by one: the suite schema validates against this table, so it is not imported here.
ClientFactory = Callable[[str, "str | None", "str | None", object, object], "openai.OpenAI"]


def openai_client(api_key: str, base_url: str | None, api_version: str | None, timeout,
                  http_client) -> openai.OpenAI:
    import openai

    # base_url=None lets the client honour $OPENAI_BASE_URL, as users expect.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0, http_client=http_client)


@dataclass(frozen=True)
class Provider:
    name: str
    endpoint_env: str  # environment variable with the API root when the suite gives no base_url
    client: ClientFactory
    needs_api_version: bool = False  # an api-version query parameter (Azure)
    batch: bool = False  # OpenAI's Batch API (files + batches) is available
    official: bool = False  # the chat API takes max_completion_tokens even without a base URL that says so
    # --- a server that runs an open model on the user's own hardware (vLLM, Ollama, llama.cpp, LM Studio) ---
    title: str = ""  # how the docs and messages name it
    local: bool = False  # no token prices (cost 0); wall time and GPU-seconds are recorded instead
    default_base_url: str | None = None  # the server's documented default, when neither suite nor env names one
    key_env: str | None = None  # api_key_env when the suite names none (the variable the server itself reads)
    placeholder_key: str | None = None  # sent when that variable is unset: the server checks no key by default
    apis: tuple[str, ...] = ("chat", "responses")
    token_params: tuple[str, ...] = ("max_completion_tokens", "max_tokens")  # budget fields the server reads
    # request field -> why it is not sent to this server (each from the server's documentation)
    not_sent: dict[str, str] = field(default_factory=dict, hash=False)
    docs: tuple[str, ...] = ()  # the pages the rules above come from
    lists_models: bool = False  # GET /models names what the server serves (checked before any image is sent)
    model_required: bool = True  # False: a single-model server answers whatever model name it is given

    def fit(self, body: dict) -> tuple[dict, dict[str, str]]:
        """``body`` without the fields this server ignores or rejects, and {field: why} for what was left out.
        ``detail`` lives in every image part (one or several images per request)."""
        if not self.not_sent:
            return body, {}
        gone = {k: self.not_sent[k] for k in body if k in self.not_sent}
        out = {k: v for k, v in body.items() if k not in self.not_sent}
        if "detail" in self.not_sent and isinstance(out.get("messages"), list):
            out["messages"] = [_without_detail(m) for m in out["messages"]]
            if any(_has_detail(m) for m in body["messages"]):
                gone["detail"] = self.not_sent["detail"]
        return out, gone


def _has_detail(message) -> bool:
    parts = message.get("content") if isinstance(message, dict) else None
    return isinstance(parts, list) and any(isinstance(p, dict) and isinstance(p.get("image_url"), dict)
                                           and "detail" in p["image_url"] for p in parts)


def _without_detail(message):
    if not _has_detail(message):
        return message
    parts = [{**p, "image_url": {k: v for k, v in p["image_url"].items() if k != "detail"}}
             if isinstance(p, dict) and isinstance(p.get("image_url"), dict) else p for p in message["content"]]
    return {**message, "content": parts}
