"""One image, one chat-completions request, through the official ``openai`` client.

Retries 429 / 5xx / timeouts / connection errors with exponential backoff and full jitter,
honouring ``Retry-After``; other 4xx errors fail the image at once (authentication errors fail the
endpoint). The client's own retries are off so this policy is the only one.
"""
from __future__ import annotations

import base64
import random
import re
import time
from dataclasses import dataclass

import openai

_KEYLIKE = re.compile(r"\b(sk|key|api)[-_][A-Za-z0-9_\-\*\.]{4,}", re.IGNORECASE)


def redact(text: str, secret: str | None = None) -> str:
    """Error texts may echo the key (OpenAI's 401 shows a masked one): never let it reach a file."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted key]", text)


class EndpointFailure(Exception):
    """The endpoint cannot serve any request (bad key, unknown model, unreachable)."""


@dataclass
class Answer:
    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    error: str | None = None


def make_client(base_url: str | None, api_key: str, timeout: float) -> openai.OpenAI:
    # base_url=None lets the client honour $OPENAI_BASE_URL, as users expect.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


def _retry_after(exc: Exception) -> float | None:
    resp = getattr(exc, "response", None)
    value = resp.headers.get("retry-after") if resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def ask(client: openai.OpenAI, *, model: str, prompt: str, png: bytes, temperature: float, max_tokens: int,
        detail: str, response_format: dict | None = None, max_retries: int = 5, base_delay: float = 1.0,
        max_delay: float = 60.0, sleep=time.sleep) -> Answer:
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    messages = [{"role": "user", "content": [
        {"type": "text", "text": prompt},
        {"type": "image_url", "image_url": {"url": url, "detail": detail}}]}]
    kwargs = {"response_format": response_format} if response_format else {}
    for attempt in range(1, max_retries + 2):
        try:
            resp = client.chat.completions.create(model=model, messages=messages, temperature=temperature,
                                                  max_tokens=max_tokens, **kwargs)
            usage = resp.usage
            return Answer(resp.choices[0].message.content, getattr(usage, "prompt_tokens", 0) or 0,
                          getattr(usage, "completion_tokens", 0) or 0, attempt)
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            raise EndpointFailure(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}") from None
        except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                openai.APIConnectionError) as exc:
            if attempt > max_retries:
                if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
                    raise EndpointFailure(f"endpoint unreachable after {attempt} attempts: {exc}") from None
                return Answer(None, attempts=attempt, error=f"{type(exc).__name__} after {attempt} attempts")
            wait = _retry_after(exc)
            if wait is None:
                wait = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            sleep(min(wait, max_delay))
        except openai.APIStatusError as exc:
            return Answer(None, attempts=attempt, error=f"HTTP {exc.status_code}: {getattr(exc, 'message', exc)}")
    raise AssertionError("unreachable")
