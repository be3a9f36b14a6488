"""One image, one request, through the official ``openai`` client (chat completions or Responses API).

Policy (the client's own retries are off, so this is the only one):

- 429 / 5xx / timeouts / dropped connections: retried with exponential backoff and full jitter,
  honouring ``Retry-After``.
- 400 ``unsupported_parameter`` / ``unsupported_value`` (current OpenAI models refuse ``max_tokens``
  and a non-default ``temperature``): the parameter is renamed or dropped once, the change is kept
  for the endpoint (:class:`Adaptations`) and the request is sent again.
- 401 / 403 / 404: the endpoint cannot serve anything: :class:`EndpointFailure`, nothing more is sent.
- Anything the server sends back is untrusted: the body is read with a total deadline and a size
  cap, and a body that is not UTF-8 JSON of the expected shape is that image's error, never a crash.
"""
from __future__ import annotations

import base64
import json
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from importlib import import_module

import openai

from ..schema.llm import EndpointConfig
from .providers import provider

# The HTTP library this openai release is built on (httpx in older releases, httpx2 in newer ones): its
# URL, timeout and exception types are taken from there, so that nothing is imported that the declared
# openai bound does not install, and the exceptions caught are the ones the client really raises.
http = import_module(next(c.__module__ for c in openai.DefaultHttpxClient.__mro__
                          if not c.__module__.startswith("openai")).partition(".")[0])

_KEYLIKE = re.compile(r"\b(sk|key|api)[-_][A-Za-z0-9_\-\*\.]{4,}", re.IGNORECASE)
MAX_BODY_BYTES = 1 << 20  # an answer body is a few hundred bytes; anything near this is a fault
MAX_TEXT_CHARS = 2000  # kept answer text (CSV cells, reports); longer answers are cut and marked
ADAPTABLE = {  # request field -> what is done when the server refuses it
    "max_tokens": "rename to max_completion_tokens", "max_completion_tokens": "rename to max_tokens",
    "temperature": "drop (server default)", "reasoning_effort": "drop", "reasoning": "drop",
    "response_format": "drop (prompt asks for JSON)", "text": "drop (prompt asks for JSON)",
}


def redact(text: str, secret: str | None = None) -> str:
    """Texts from a server may echo the key (OpenAI's 401 shows a masked one): never let it reach a file."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted key]", text)


def clean_text(text: str) -> tuple[str, bool]:
    """(text safe to write anywhere, whether it held invalid Unicode such as a lone surrogate)."""
    fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    fixed = fixed.replace("\x00", "\ufffd")
    return fixed, fixed != text


class EndpointFailure(Exception):
    """The endpoint cannot serve any request (bad key, no permission, unknown model, unreachable)."""


@dataclass
class Answer:
    """The outcome of one logical request (its retries included)."""
    text: str | None
    status: str = "ok"  # ok | truncated | error | not_sent
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    usage_known: bool = False
    attempts: int = 0
    error: str | None = None
    capped: bool = False  # text longer than MAX_TEXT_CHARS, cut
    refusal: str | None = None  # the server's refusal field (OpenAI structured outputs), when it sent one


@dataclass
class Adaptations:
    """Request changes an endpoint forced (400 unsupported_*), shared by every request to it."""
    token_param: str
    dropped: set[str] = field(default_factory=set)
    notes: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def to_state(self) -> dict:
        return {"token_param": self.token_param, "dropped": sorted(self.dropped), "notes": self.notes}

    @classmethod
    def from_state(cls, d: dict | None, default_token_param: str) -> Adaptations:
        if not isinstance(d, dict):
            return cls(default_token_param)
        tp = d.get("token_param")
        dropped = {p for p in d.get("dropped", []) if isinstance(p, str) and p in ADAPTABLE} \
            if isinstance(d.get("dropped"), list) else set()
        notes = [{k: str(n.get(k, ""))[:300] for k in ("param", "code", "action", "server_said")}
                 for n in d.get("notes", []) if isinstance(n, dict) and n.get("param") in ADAPTABLE]
        return cls(tp if tp in ("max_tokens", "max_completion_tokens") else default_token_param, dropped, notes)

    def apply(self, param: str, code: str, message: str) -> bool:
        """Adapt once to a refused ``param``; False when there is nothing (more) to adapt."""
        with self.lock:
            if param in ("max_tokens", "max_completion_tokens"):
                if self.token_param != param:
                    return True  # another thread already switched
                if any(n["param"] == param for n in self.notes):
                    return False  # switched back and forth: the server accepts neither
                self.token_param = "max_completion_tokens" if param == "max_tokens" else "max_tokens"
            elif param in ADAPTABLE:
                if param in self.dropped:
                    return True
                self.dropped.add(param)
            else:
                return False
            self.notes.append({"param": param, "code": code, "action": ADAPTABLE[param],
                               "server_said": message[:300]})
            return True


def default_token_param(ep: EndpointConfig, base_url: str | None) -> str:
    if ep.token_param != "auto":
        return ep.token_param
    if provider(ep.provider).official or not base_url or "api.openai.com" in base_url:
        return "max_completion_tokens"
    return "max_tokens"  # what vLLM, Ollama, LM Studio and the other compatible servers all accept


class CrossOriginRedirect(Exception):
    """The endpoint redirected a request to another scheme, host or port."""


def _origin(url: http.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def _same_origin_client(origin: list) -> http.Client:
    """An HTTP client that follows redirects only within the endpoint's own origin: answers from the
    host a redirect points to would otherwise be scored as the endpoint's (and receive its key)."""
    def check(request: http.Request) -> None:
        if origin and _origin(request.url) != origin[0]:
            raise CrossOriginRedirect(f"{request.url.scheme}://{request.url.host}"
                                      + (f":{request.url.port}" if request.url.port else ""))
    return openai.DefaultHttpxClient(event_hooks={"request": [check]})


def make_client(ep: EndpointConfig, api_key: str, base_url: str | None, timeout: float) -> openai.OpenAI:
    t = http.Timeout(timeout, connect=min(timeout, 15.0))
    origin: list = []  # filled once the client has resolved its base URL
    client = provider(ep.provider).client(api_key, base_url, ep.api_version, t, _same_origin_client(origin))
    origin.append(_origin(client.base_url))
    return client


def image_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _content(ep: EndpointConfig, prompt: str, png) -> list[dict]:
    """The user message: the prompt, then the image, or each labelled image of a list of (label, png)."""
    images = png if isinstance(png, list) else [(None, png)]
    text, image = ("input_text", "input_image") if ep.api == "responses" else ("text", "image_url")
    out = [{"type": text, "text": prompt}]
    for label, data in images:
        url = image_url(data) if data is not None else None
        if label is not None:
            out.append({"type": text, "text": label})
        out.append({"type": image, "image_url": url, "detail": ep.detail} if ep.api == "responses"
                   else {"type": image, "image_url": {"url": url, "detail": ep.detail}})
    return out


def request_body(ep: EndpointConfig, adapt: Adaptations, *, prompt: str, response_format: dict | None,
                 png: bytes | list | None, budget: int, extra_body: dict | None = None) -> dict:
    """The JSON body of one request (``png=None`` gives a body without the image, e.g. for cache keys; a list
    of (label, png or None) sends several labelled images). ``extra_body``: fields beyond OpenAI's (vLLM)."""
    drop = adapt.dropped
    if ep.api == "responses":
        body: dict = {"model": ep.model, "max_output_tokens": budget,
                      "input": [{"role": "user", "content": _content(ep, prompt, png)}]}
        if ep.temperature is not None and "temperature" not in drop:
            body["temperature"] = ep.temperature
        if ep.reasoning_effort is not None and not drop & {"reasoning", "reasoning_effort"}:
            body["reasoning"] = {"effort": ep.reasoning_effort}
        if response_format and "text" not in drop and "response_format" not in drop:
            js = response_format["json_schema"]
            body["text"] = {"format": {"type": "json_schema", "name": js["name"], "schema": js["schema"],
                                       "strict": js.get("strict", True)}}
        if extra_body:
            body["extra_body"] = extra_body
        return body
    body = {"model": ep.model, adapt.token_param: budget,
            "messages": [{"role": "user", "content": _content(ep, prompt, png)}]}
    if ep.temperature is not None and "temperature" not in drop:
        body["temperature"] = ep.temperature
    if ep.reasoning_effort is not None and "reasoning_effort" not in drop:
        body["reasoning_effort"] = ep.reasoning_effort
    if response_format and "response_format" not in drop:
        body["response_format"] = response_format
    if extra_body:
        body["extra_body"] = extra_body  # the openai client merges it into the JSON body
    return body


# --- reading an answer body (also used for Batch API output lines) ----------------------------------

class BadAnswer(Exception):
    """The server's answer body cannot be used; the message says why (no server text in it)."""


def _int(v) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**9 else 0


def _describe(raw: bytes) -> str:
    head = raw[:60].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else "?" for c in head)


def decode_json(raw: bytes) -> object:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadAnswer("answer body is not UTF-8") from None
    try:
        return json.loads(s)
    except (json.JSONDecodeError, RecursionError):
        raise BadAnswer(f"answer body is not JSON (starts {_describe(raw)!r})") from None


def answer_from_json(obj: object, api: str) -> Answer:
    """An :class:`Answer` from a chat-completion or Responses object; :class:`BadAnswer` if malformed."""
    if not isinstance(obj, dict):
        raise BadAnswer(f"answer body is a JSON {type(obj).__name__}, not an object")
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
    refusal = None
    if api == "responses":
        out = obj.get("output")
        if not isinstance(out, list):
            raise BadAnswer("answer has no 'output' list")
        parts = []
        for item in out:
            if isinstance(item, dict) and item.get("type") == "message" and isinstance(item.get("content"), list):
                for c in item["content"]:
                    if isinstance(c, dict) and c.get("type") == "refusal" and isinstance(c.get("refusal"), str):
                        refusal = c["refusal"]
                    if isinstance(c, dict) and c.get("type") == "output_text":
                        if not isinstance(c.get("text"), str):
                            raise BadAnswer("answer output_text is not a string")
                        parts.append(c["text"])
        text = "".join(parts) if parts else None
        details = obj.get("incomplete_details") if isinstance(obj.get("incomplete_details"), dict) else {}
        finish = "length" if details.get("reason") == "max_output_tokens" else (
            obj.get("status") if isinstance(obj.get("status"), str) else None)
        pt, ct = (_int(usage.get("input_tokens")), _int(usage.get("output_tokens"))) if usage else (0, 0)
        det = usage.get("output_tokens_details") if usage else None
    else:
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BadAnswer("answer has no 'choices'")
        msg = choices[0].get("message")
        if not isinstance(msg, dict):
            raise BadAnswer("answer choice has no 'message'")
        text = msg.get("content")
        if text is not None and not isinstance(text, str):
            raise BadAnswer(f"answer content is a JSON {type(text).__name__}, not a string")
        finish = choices[0].get("finish_reason") if isinstance(choices[0].get("finish_reason"), str) else None
        refusal = msg.get("refusal") if isinstance(msg.get("refusal"), str) and msg.get("refusal") else None
        pt, ct = (_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))) if usage else (0, 0)
        det = usage.get("completion_tokens_details") if usage else None
    rt = _int(det.get("reasoning_tokens")) if isinstance(det, dict) else 0
    status = "truncated" if finish == "length" and not (text or "").strip() else "ok"
    return Answer(text, status, finish[:40] if finish else None, pt, ct, rt, usage is not None,
                  refusal=refusal[:MAX_TEXT_CHARS] if refusal else None)


def finish_text(ans: Answer, secret: str | None, limit: int = MAX_TEXT_CHARS) -> Answer:
    """Cap (at ``limit`` characters), clean and redact the answer text (and a refusal's); invalid Unicode makes
    the image's answer an error."""
    if ans.refusal is not None:
        ans.refusal = redact(clean_text(ans.refusal)[0], secret)
    if ans.text is None:
        return ans
    text = ans.text
    if len(text) > limit:
        text, ans.capped = text[:limit] + f" [... {len(ans.text) - limit} more characters]", True
    text, bad = clean_text(text)
    ans.text = redact(text, secret)
    if bad:
        ans.status, ans.error = "error", "answer text holds invalid Unicode (lone surrogate or NUL)"
    return ans


# --- sending -------------------------------------------------------------------------------------------

class _Deadline(Exception):
    pass


class _TooBig(Exception):
    pass


class _Dropped(Exception):
    """The connection broke, or the body could not be decoded, in the middle of an answer."""


def _retry_after(exc: Exception) -> float | None:
    resp = getattr(exc, "response", None)
    value = resp.headers.get("retry-after") if resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)[:500]


class Endpoint:
    """One configured endpoint: its client, its adaptations, and the request policy above."""

    def __init__(self, ep: EndpointConfig, *, api_key: str, base_url: str | None, prompt: str,
                 response_format: dict | None, timeout: float, max_retries: int,
                 adaptations: Adaptations | None = None, base_delay: float = 1.0, max_delay: float = 60.0,
                 sleep=time.sleep, client: openai.OpenAI | None = None, extra_body: dict | None = None,
                 text_limit: int = MAX_TEXT_CHARS):
        self.ep, self.key, self.prompt, self.response_format = ep, api_key, prompt, response_format
        self.extra_body, self.text_limit = extra_body, text_limit
        self.timeout, self.max_retries = timeout, max_retries
        self.base_delay, self.max_delay, self.sleep = base_delay, max_delay, sleep
        self.adapt = adaptations or Adaptations(default_token_param(ep, base_url))
        self.client = client or make_client(ep, api_key, base_url, timeout)
        self.stop = threading.Event()  # set on an endpoint failure or Ctrl-C: queued requests are not sent
        self.not_sent: dict[str, str] = {}  # request field -> why this server does not get it (Provider.fit)
        self.stop_reason = "the endpoint failed"

    def interrupt(self) -> None:
        """Ctrl-C: nothing more is sent (requests already on the wire still get their answers)."""
        self.stop_reason = "the run was interrupted"
        self.stop.set()

    def body(self, png: bytes | list | None, budget: int, request: dict | None = None) -> dict:
        """``request``: this request's own prompt / response_format / extra_body (several images), else the
        endpoint's."""
        r = request or {}
        body = request_body(self.ep, self.adapt, prompt=r.get("prompt", self.prompt),
                            response_format=r.get("response_format", self.response_format),
                            png=png, budget=budget, extra_body=r.get("extra_body", self.extra_body))
        # a local server's ignored fields are left out (and recorded), so the result claims only what it saw
        body, self.not_sent = provider(self.ep.provider).fit(body)
        return body

    def _post(self, body: dict) -> bytes:
        """Send ``body``; the raw answer bytes, read within ``timeout`` seconds in all, at most MAX_BODY_BYTES."""
        deadline = time.monotonic() + self.timeout
        api = self.client.responses if self.ep.api == "responses" else self.client.chat.completions
        with api.with_streaming_response.create(**body) as resp:
            chunks, size = [], 0
            try:
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise _TooBig
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise _Deadline
            except http.TimeoutException:
                raise _Deadline from None
            except http.RequestError as exc:  # raised while reading the body, past the client's own handling
                raise _Dropped(type(exc).__name__) from None
            return b"".join(chunks)

    def ask(self, png: bytes | list, budget: int, meter=None, request: dict | None = None) -> Answer:
        """One image (or a list of labelled ones, with their ``request``, see :meth:`body`) at ``budget``
        completion tokens. ``meter`` (optional) gates and accounts every attempt:
        ``meter.reserve(budget) -> hold | None`` (None: over the cost cap, nothing is sent) and
        ``meter.settle(hold, answer_or_None, charged)``."""
        attempt, adapted = 0, 0
        while True:
            if self.stop.is_set():
                return Answer(None, "not_sent", attempts=attempt, error=f"not sent: {self.stop_reason}")
            hold = meter.reserve(budget) if meter else None
            if meter and hold is None:
                return Answer(None, "not_sent", attempts=attempt, error="not sent: --max-cost reached")
            attempt += 1
            charged, ans = False, None
            try:
                raw = self._post(self.body(png, budget, request))
                charged = True
                try:
                    ans = answer_from_json(decode_json(raw), self.ep.api)
                except BadAnswer as exc:
                    ans = Answer(None, "error", error=str(exc))
                ans.attempts = attempt
                return finish_text(ans, self.key, self.text_limit)
            except _TooBig:
                charged = True
                ans = Answer(None, "error", attempts=attempt, error=f"answer body over {MAX_BODY_BYTES} bytes: not read")
                return ans
            except CrossOriginRedirect as exc:  # raised by the HTTP client before the other host is asked
                self.stop.set()
                raise EndpointFailure(f"the endpoint redirected to another host ({exc}); cross-origin redirects are "
                                      "refused, since that host's answers would be scored as the endpoint's: set "
                                      "base_url to the host that answers") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                self.stop.set()
                raise EndpointFailure(redact(f"{type(exc).__name__}: {_message(exc)}", self.key)) from None
            except openai.BadRequestError as exc:
                code, param = str(getattr(exc, "code", "") or ""), str(getattr(exc, "param", "") or "")
                param = param.split(".")[0]  # Responses API: 'reasoning.effort', 'text.format'
                if code in ("unsupported_parameter", "unsupported_value") and adapted < len(ADAPTABLE) \
                        and self.adapt.apply(param, code, redact(_message(exc), self.key)):
                    adapted += 1
                    continue  # the same image again, with the adapted request
                ans = Answer(None, "error", attempts=attempt, error=redact(f"HTTP 400: {_message(exc)}", self.key))
                return ans
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError, _Deadline,
                    _Dropped) as exc:
                # a timeout or a broken answer may still be billed: its reservation is counted as spent
                charged = isinstance(exc, (openai.APITimeoutError, _Deadline, _Dropped))
                name = {_Deadline: "APITimeoutError", _Dropped: "answer cut off"}.get(type(exc), type(exc).__name__)
                if attempt > self.max_retries:
                    if isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
                        self.stop.set()
                        raise EndpointFailure(redact(f"endpoint unreachable after {attempt} attempts: {exc}",
                                                     self.key)) from None
                    ans = Answer(None, "error", attempts=attempt, error=f"{name} after {attempt} attempts")
                    return ans
                wait = _retry_after(exc)
                if wait is None:
                    wait = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
                if self.sleep is time.sleep:
                    self.stop.wait(min(wait, self.max_delay))  # an interrupt ends the back-off at once
                else:
                    self.sleep(min(wait, self.max_delay))
            except openai.APIStatusError as exc:
                ans = Answer(None, "error", attempts=attempt,
                             error=redact(f"HTTP {exc.status_code}: {_message(exc)}", self.key))
                return ans
            finally:
                if meter:
                    meter.settle(hold, ans, charged)


def retry_budget(ep: EndpointConfig, budget: int) -> int:
    return min(200_000, math.ceil(budget * ep.truncation_retry_factor))
