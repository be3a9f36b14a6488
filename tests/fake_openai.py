"""A real HTTP server on 127.0.0.1 that answers as OpenAI's API (and its look-alikes) do, scriptable per request.

What it emulates (the real ``openai`` client talks to it):

- ``/chat/completions`` and ``/responses`` under any prefix (``/v1``, Gemini's ``/v1beta/openai``), and
  Azure OpenAI's ``/openai/deployments/{name}/chat/completions?api-version=...`` with an ``api-key`` header.
- Current OpenAI models, by name (``gpt-5*``, ``o1``/``o3``/``o4*``): ``max_tokens`` and a temperature other
  than 1 are refused with the documented 400 ``unsupported_parameter`` / ``unsupported_value`` errors, and
  hidden reasoning burns the completion budget first (too small a budget: empty content,
  ``finish_reason: "length"``).
- ``profile``: ``openai`` (default), ``azure``, ``anthropic`` (temperature capped at 1, response_format and
  reasoning_effort ignored, as its compatibility layer documents), ``local`` (vLLM / Ollama / LM Studio: only
  ``max_tokens``, unknown fields ignored, vLLM's error shape, optionally no ``usage``).
- ``profile`` ``vllm``, ``ollama``, ``llamacpp``, ``lmstudio``: each local server as its documentation
  describes it (see :data:`SERVERS` and docs/vlm-servers.md): ``GET /v1/models`` lists ``served`` (llama.cpp
  with its ``architecture.input_modalities``; ``vision=False`` serves a text-only model), a model it does not
  serve is a 404 in the server's error shape (llama.cpp: any name, one model), only the budget fields the
  server reads bound the answer, vLLM honours ``structured_outputs: {choice: [...]}``, Ollama answers 400 to a
  reasoning effort it does not know and uses temperature 1.0 when none is sent; ``api_key`` makes the server
  check the key (401 otherwise). ``seen`` records, per request, what the emulated server read.
- Files and Batches (``/files``, ``/files/{id}/content``, ``/batches``, ``/batches/{id}``): a batch runs each
  line through the same model rules and script when :meth:`FakeOpenAI.finish_batches` is called (or after
  ``batch_polls`` status checks); lines that do not answer 200 go to the error file.
- Several images in one request (each after a text label ``Image k (id ...)``): :func:`images_of` lists a
  request's (label, sha256) pairs for a script; :func:`lines_for` writes the line answer, with a wrong count on
  demand. ``Reply(refusal=...)`` answers with OpenAI's refusal field (no content); ``Reply(finish_reason=
  "content_filter", text="")`` is a content-filter block.
- Faults (``Reply(fault=...)``): ``trickle``, ``cut`` (hangs up mid-body), ``bad_gzip``, ``malformed``,
  ``html``, ``no_choices``, ``non_utf8``, ``surrogate``, ``huge``; ``Reply(content=[...])`` sends a
  non-string content.

``script(n, image_sha256, body) -> Reply`` decides every answer; ``requests`` records every model request.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


_MISSING = object()


class Reply:
    def __init__(self, text=None, status=200, headers=None, delay=0.0, fault=None, content=_MISSING,
                 error=None, usage=True, finish_reason="stop", refusal=None):
        self.text, self.status, self.headers, self.delay = text, status, headers or {}, delay
        self.fault, self.content, self.error, self.usage, self.finish_reason = fault, content, error, usage, finish_reason
        self.refusal = refusal


def images_of(body) -> list[tuple[str | None, str]]:
    """(label, sha256 of the image) for every image of a request, in order (label: the text part before it)."""
    parts = body["messages"][0]["content"] if "messages" in body else body["input"][0]["content"]
    out, label = [], None
    for n, c in enumerate(parts):
        if c["type"] in ("text", "input_text"):
            label = c["text"] if n else None
        elif c["type"] in ("image_url", "input_image"):
            url = c["image_url"]["url"] if c["type"] == "image_url" else c["image_url"]
            out.append((label, hashlib.sha256(base64.b64decode(url.split(",", 1)[1])).hexdigest()))
            label = None
    return out


def lines_for(body, answer, drop=0) -> str:
    """The line answer to a several-image request: ``answer(sha)`` for each image, the last ``drop`` left out."""
    imgs = images_of(body)
    return "\n".join(f"{label}: {answer(sha)}" for label, sha in imgs[: len(imgs) - drop])


REASONING_BY_EFFORT = {"none": 0, "minimal": 16, "low": 120, "medium": 300, "high": 1200, "xhigh": 2400}
CURRENT = re.compile(r"^(gpt-5|o\d)")


OLLAMA_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "ultra", "max")  # openai/openai.go
_CHAT = {"model", "messages", "stream", "stop", "temperature", "top_p", "seed", "response_format",
         "frequency_penalty", "presence_penalty", "tools"}
# What each local server reads from a chat request, as its documentation says (docs/vlm-servers.md cites them).
SERVERS = {
    "vllm": {"owner": "vllm", "budget": ("max_completion_tokens", "max_tokens"), "temperature": None,
             "reads": _CHAT | {"max_tokens", "max_completion_tokens", "reasoning_effort", "logprobs",
                               "structured_outputs", "top_k"},
             "one_model": False, "unknown_model": "The model `{}` does not exist."},
    "ollama": {"owner": "library", "budget": ("max_tokens",), "temperature": 1.0,
               "reads": _CHAT | {"max_tokens", "reasoning_effort", "reasoning", "logprobs"},
               "one_model": False, "unknown_model": 'model "{}" not found, try pulling it first'},
    "llamacpp": {"owner": "llamacpp", "budget": ("max_tokens",), "temperature": 0.8,
                 "reads": _CHAT | {"max_tokens", "reasoning_effort", "grammar", "json_schema"},
                 "one_model": True, "unknown_model": ""},
    "lmstudio": {"owner": "organization_owner", "budget": ("max_tokens",), "temperature": None,
                 "reads": _CHAT | {"max_tokens", "top_k", "logit_bias", "repeat_penalty"},
                 "one_model": False, "unknown_model": "Model '{}' not found"},
}


def openai_error(message, *, param=None, code=None, type_="invalid_request_error"):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI:
    def __init__(self, script=None, *, profile="openai", usage=True, trickle_delay=0.05, batch_polls=None,
                 prompt_tokens=100, answer_tokens=2, served=None, vision=True, api_key=None):
        self.script = script or (lambda n, sha, body: Reply("happy"))
        self.profile, self.usage, self.trickle_delay = profile, usage, trickle_delay
        self.prompt_tokens, self.answer_tokens = prompt_tokens, answer_tokens
        self.requests: list[dict] = []  # every model request (HTTP or batch line) that reached the rules
        self.http_log: list[tuple[str, str]] = []  # (method, path) of every HTTP request
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_polls = batch_polls
        self.reasoning = dict(REASONING_BY_EFFORT)
        self.served, self.vision, self.api_key = served, vision, api_key  # local server profiles (SERVERS)
        self.seen: list[dict] = []  # local profiles: what the server read from each request
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer._route(self, "GET")

            def do_POST(self):
                outer._route(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # --- plumbing ----------------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _send(self, h, status, payload, headers=None, fault=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "text/html" if fault == "html" else "application/json")
            if fault == "bad_gzip":
                h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            if fault == "cut":  # promised more than it sends, then hangs up
                h.wfile.write(data[: len(data) // 2])
                h.wfile.flush()
                h.close_connection = True
                return
            if fault == "trickle":
                for i in range(len(data)):
                    h.wfile.write(data[i:i + 1])
                    h.wfile.flush()
                    time.sleep(self.trickle_delay)
            else:
                h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def _route(self, h, method):
        url = urlparse(h.path)
        path, query = url.path, parse_qs(url.query)
        with self.lock:
            self.http_log.append((method, path))
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0)) if method == "POST" else b""
        if self.profile == "azure" and ("api-version" not in query or not h.headers.get("api-key")):
            return self._send(h, 400 if "api-version" not in query else 401,
                              openai_error("Azure: api-version query and api-key header required"))
        auth = h.headers.get("api-key") if self.profile == "azure" else h.headers.get("Authorization")
        if self.profile in SERVERS and self.api_key and auth != f"Bearer {self.api_key}":
            return self._send(h, 401, self._local_error(401, "Unauthorized: invalid api key"))
        try:
            if method == "GET" and path.endswith("/models") and self.profile in SERVERS:
                return self._send(h, 200, self._model_list())
            if method == "POST" and path.endswith("/files"):
                return self._send(h, 200, self._upload(h, raw))
            if method == "GET" and re.search(r"/files/[^/]+/content$", path):
                f = self.files.get(path.split("/")[-2])
                return self._send(h, 200, f["data"]) if f else self._send(h, 404, openai_error("no such file"))
            if method == "POST" and path.endswith("/batches"):
                return self._send(h, 200, self._create_batch(json.loads(raw)))
            if method == "GET" and path.endswith("/batches"):
                return self._send(h, 200, {"object": "list", "data": list(self.batches.values()), "has_more": False})
            if method == "POST" and re.search(r"/batches/[^/]+/cancel$", path):
                b = self.batches[path.split("/")[-2]]
                b["status"] = "cancelled"
                return self._send(h, 200, self._public(b))
            if method == "GET" and re.search(r"/batches/[^/]+$", path):
                return self._send(h, 200, self._poll_batch(path.rsplit("/", 1)[1]))
            if method == "POST" and path.endswith(("/chat/completions", "/responses")):
                kind = "responses" if path.endswith("/responses") else "chat"
                body = json.loads(raw)
                dep = re.search(r"/deployments/([^/]+)/", path)
                status, payload, headers, fault, delay = self.answer(kind, body, auth=auth,
                                                                      deployment=dep and dep.group(1))
                if delay:
                    time.sleep(delay)
                return self._send(h, status, payload, headers, fault)
        except (ValueError, KeyError) as exc:
            return self._send(h, 400, openai_error(f"fake server: bad request ({exc})"))
        return self._send(h, 404, openai_error(f"not found: {path}"))

    # --- model requests ----------------------------------------------------------------------------
    def _error(self, status, message, param=None, code=None):
        if self.profile == "local":  # vLLM's shape: no OpenAI error codes
            return status, {"object": "error", "message": message, "type": "BadRequestError", "param": None,
                            "code": status}
        return status, openai_error(message, param=param, code=code)

    def answer(self, kind, body, *, auth=None, deployment=None):
        """(status, payload, headers, fault, delay) for one model request; also used for batch lines."""
        model = deployment or body.get("model", "")
        if kind == "chat":
            budget_field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
            budget = body.get(budget_field)
            effort = body.get("reasoning_effort")
        else:
            budget_field, budget = "max_output_tokens", body.get("max_output_tokens")
            effort = (body.get("reasoning") or {}).get("effort")
        sha = images_of(body)[0][1]  # the first image's (several: see images_of)
        with self.lock:
            n = len(self.requests)
            self.requests.append({"body": body, "sha": sha, "auth": auth, "kind": kind, "model": model,
                                  "deployment": deployment})
        local_budget = None
        if self.profile in SERVERS:
            refused, local_budget = self._local_rules(body, model)
            if refused is not None:
                return (*refused, {}, None, 0)
        current = bool(CURRENT.match(model)) and self.profile in ("openai", "azure")
        if current and kind == "chat" and "max_tokens" in body:
            return (*self._error(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                      "Use 'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter"),
                    {}, None, 0)
        temp = body.get("temperature")
        if current and temp is not None and temp != 1:
            return (*self._error(400, f"Unsupported value: 'temperature' does not support {temp:g} with this model. "
                                      "Only the default (1) value is supported.", "temperature", "unsupported_value"),
                    {}, None, 0)
        if self.profile == "local" and "max_completion_tokens" in body:
            budget = None  # an older local server ignores the field it does not know
        if self.profile in SERVERS:
            budget = local_budget  # only the fields this server reads bound the answer
        r = self.script(n, sha, body)
        if r.status != 200:
            payload = r.error or self._error(r.status, f"scripted {r.status}")[1]
            return r.status, payload, r.headers, None, r.delay
        reasoning = self.reasoning.get(effort or "medium", 300) if current else 0
        text = r.text
        if self.profile == "vllm" and isinstance(body.get("structured_outputs"), dict):
            choices = body["structured_outputs"].get("choice") or []
            text = next((c for c in choices if c in (text or "")), choices[0] if choices else text)
        finish = r.finish_reason
        completion = reasoning + self.answer_tokens
        if budget is not None and completion > budget:
            text, finish, completion = "", "length", budget  # the hidden reasoning ate the budget
            reasoning = min(reasoning, budget)
        if r.fault == "huge":
            text = "happy " * ((2 << 20) // 6)
        content = r.content if r.content is not _MISSING else (None if r.refusal else text)
        usage_on = r.usage and self.usage
        if kind == "chat":
            message = {"role": "assistant", "content": content, **({"refusal": r.refusal} if r.refusal else {})}
            payload = {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": model,
                       "choices": [{"index": 0, "finish_reason": finish, "message": message}]}
            if usage_on:
                payload["usage"] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                                    "total_tokens": self.prompt_tokens + completion,
                                    "completion_tokens_details": {"reasoning_tokens": reasoning}}
        else:
            out = [{"type": "reasoning", "id": f"rs_{n}", "summary": []}] if reasoning else []
            if finish != "length":
                out.append({"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                            "content": [{"type": "refusal", "refusal": r.refusal} if r.refusal else
                                        {"type": "output_text", "text": content, "annotations": []}]})
            payload = {"id": f"resp_{n}", "object": "response", "created_at": 0, "model": model,
                       "status": "incomplete" if finish == "length" else "completed",
                       "incomplete_details": {"reason": "max_output_tokens"} if finish == "length" else None,
                       "output": out}
            if usage_on:
                payload["usage"] = {"input_tokens": self.prompt_tokens, "output_tokens": completion,
                                    "total_tokens": self.prompt_tokens + completion,
                                    "output_tokens_details": {"reasoning_tokens": reasoning}}
        fault_bodies = {"malformed": b'{"id": "x", "choices": [', "html": b"<!DOCTYPE html><html>502 Bad Gateway</html>",
                        "no_choices": json.dumps({"id": "x", "object": "chat.completion"}).encode(),
                        "non_utf8": b'{"choices": [{"message": {"content": "\xff\xfe happy"}}]}'}
        if r.fault == "bad_gzip":
            return 200, b"\x1f\x8b\x08\x00 this is not gzip", r.headers, r.fault, r.delay
        if r.fault in fault_bodies:
            return 200, fault_bodies[r.fault], r.headers, r.fault, r.delay
        if r.fault == "surrogate":
            data = json.dumps(payload).replace(json.dumps(content)[1:-1], "happy \\ud800", 1).encode()
            return 200, data, r.headers, None, r.delay
        return 200, payload, r.headers, r.fault, r.delay

    # --- local servers (profiles in SERVERS) --------------------------------------------------------------
    def _local_error(self, status, message):
        if self.profile == "vllm":
            return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": status}
        err = {"message": message, "type": {400: "invalid_request_error", 404: "not_found_error"}.get(status,
                                                                                                     "api_error")}
        return {"error": {**err, "code": status} if self.profile == "llamacpp" else err}

    def _model_list(self):
        data = []
        for m in self.served or ["local-model"]:
            entry = {"id": m, "object": "model", "created": 0, "owned_by": SERVERS[self.profile]["owner"]}
            if self.profile == "llamacpp":
                entry["architecture"] = {"input_modalities": ["text", "image"] if self.vision else ["text"],
                                         "output_modalities": ["text"]}
            data.append(entry)
        return {"object": "list", "data": data}

    def _local_rules(self, body, model):
        """((status, payload) when the emulated server refuses ``body``, else None; the budget it read).
        Records what it read in ``seen``."""
        rules = SERVERS[self.profile]
        read = [f for f in rules["budget"] if f in body]
        parts = body["messages"][0]["content"]
        details = [c["image_url"].get("detail") for c in parts if c["type"] == "image_url"]
        effort = body.get("reasoning_effort")
        budget = body[read[0]] if read else None
        with self.lock:
            self.seen.append({"model": model, "budget": budget,
                              "temperature": body.get("temperature", rules["temperature"]),
                              "detail_sent": any(d is not None for d in details), "reasoning_effort": effort,
                              "ignored": sorted(k for k in body if k not in rules["reads"])})
        if self.served and rules["one_model"] is False and not any(
                model == m or f"{model}:latest" == m for m in self.served):
            return (404, self._local_error(404, rules["unknown_model"].format(model))), budget
        if self.profile == "ollama" and effort is not None and effort not in OLLAMA_EFFORTS:
            return (400, self._local_error(400, f"invalid reasoning value: {effort!r}")), budget
        if self.profile == "llamacpp" and not self.vision:
            return (500, self._local_error(500, "image input is not supported - hint: if this is unexpected, "
                                                "you may need to provide the mmproj")), budget
        return None, budget

    # --- files and batches -------------------------------------------------------------------------
    def _upload(self, h, raw):
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + h.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
        fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
        data = fields["file"].get_payload(decode=True)
        purpose = fields["purpose"].get_payload(decode=True).decode()
        with self.lock:
            fid = f"file-{len(self.files) + 1}"
            self.files[fid] = {"data": data, "purpose": purpose}
        return {"id": fid, "object": "file", "bytes": len(data), "created_at": 0,
                "filename": fields["file"].get_filename(), "purpose": purpose, "status": "processed"}

    def _create_batch(self, body):
        if body.get("input_file_id") not in self.files or body.get("completion_window") != "24h":
            raise ValueError("unknown input file or completion window")
        with self.lock:
            bid = f"batch_{len(self.batches) + 1}"
            self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                                 "input_file_id": body["input_file_id"], "completion_window": "24h",
                                 "status": "validating", "output_file_id": None, "error_file_id": None,
                                 "created_at": 0, "metadata": body.get("metadata"), "polls": 0,
                                 "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        return self._public(self.batches[bid])

    @staticmethod
    def _public(b):
        return {k: v for k, v in b.items() if k != "polls"}

    def _poll_batch(self, bid):
        b = self.batches[bid]
        b["polls"] += 1
        if b["status"] == "validating":
            b["status"] = "in_progress"
        if self.batch_polls is not None and b["polls"] >= self.batch_polls and b["status"] == "in_progress":
            self._run_batch(b)
        return self._public(b)

    def finish_batches(self, status="completed"):
        for b in self.batches.values():
            if b["status"] in ("validating", "in_progress"):
                self._run_batch(b, status)

    def _run_batch(self, b, status="completed"):
        out, err = [], []
        lines = self.files[b["input_file_id"]]["data"].decode().splitlines()
        if status == "expired":
            lines = lines[: len(lines) // 2]  # an expired batch answered only some requests
        for line in lines:
            req = json.loads(line)
            kind = "responses" if req["url"].endswith("/responses") else "chat"
            code, payload, _, fault, _ = self.answer(kind, req["body"])
            if fault is not None or isinstance(payload, bytes):
                payload = {"not": "a completion"}
            entry = {"id": f"batch_req_{len(out) + len(err)}", "custom_id": req["custom_id"],
                     "response": {"status_code": code, "request_id": "r", "body": payload}, "error": None}
            (out if code == 200 else err).append(json.dumps(entry))
        with self.lock:
            for name, rows in (("output_file_id", out), ("error_file_id", err)):
                if rows:
                    fid = f"file-{len(self.files) + 1}"
                    self.files[fid] = {"data": ("\n".join(rows) + "\n").encode(), "purpose": "batch_output"}
                    b[name] = fid
        b["status"] = status
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}


# --- helpers for the LLM tests: one LLM experiment on synthetic data, no training, no CLI ---------------

_SPLITS: dict = {}


def synthetic_split(n: int = 1400):
    """The official split of ``n`` synthetic faces (cached per process: building it takes seconds)."""
    if n not in _SPLITS:
        from ferbench.data.splits import make_split
        from ferbench.data.synthetic import make_synthetic

        _SPLITS[n] = make_split(make_synthetic(n, 0), "official")
    return _SPLITS[n]


def llm_experiment(eid="s.llm.m", *, per_class=3, prompt="paper", image_size=48, concurrency=4, max_retries=1,
                   timeout=10.0, batch_wait=0.0, batch_poll_interval=0.01, deviations=(), llm=None, **endpoint):
    """One LLM experiment; ``llm``: more settings of the llm block (strategy, top_k, images_per_request ...)."""
    from ferbench.schema.experiment import LLMExperiment as Experiment
    from ferbench.schema.llm import EndpointConfig, LLMConfig
    from ferbench.schema.suite import SplitConfig

    endpoint.setdefault("api_key_env", "FAKE_KEY")
    ep = EndpointConfig(**endpoint)
    llm = LLMConfig(endpoints=[ep], sample={"per_class": per_class}, prompt=prompt, image_size=image_size,
                    concurrency=concurrency, max_retries=max_retries, timeout=timeout, batch_wait=batch_wait,
                    batch_poll_interval=batch_poll_interval, **(llm or {}))
    return Experiment(id=eid, study="s", kind="llm", label=ep.label or ep.model, split=SplitConfig(),
                      llm_endpoint=ep, llm=llm, deviations=list(deviations))


def truth_by_sha(split, size: int = 48) -> dict:
    import hashlib as _h

    from ferbench.llm.query import png_bytes
    out = {}
    for part in (split.test, split.val):
        for img, y in zip(part.images, part.labels):
            out[_h.sha256(png_bytes(img, size)).hexdigest()] = split.classes[y]
    return out


def correct(truth):
    """A script that answers every image with its true class."""
    return lambda n, sha, body: Reply(truth[sha])



KEY = "test-key-0123"


def llm_options(tmp_path, **kw):
    """LLM run options for a test: a private response cache, no real sleeping between retries."""
    from ferbench.llm.query import LLMRunOptions

    return LLMRunOptions(cache_dir=tmp_path / "cache", sleep=lambda s: None, **kw)


def ask(exp, split, store, options=None, console=None, dry_run=False):
    """Run one LLM experiment as a run does (its kind's handler, then the store writes result.json,
    predictions.csv and the sample's images); the stored, typed LLMResult."""
    from ferbench.executors.recorder import base_fields, split_info, store_outcome
    from ferbench.experiments import Context, RunOptions, run_experiment

    ctx = Context(split=split, device="cpu", store=store, config_hash=exp.config_hash(),
                  options=RunOptions(dry_run=dry_run, llm=options), console=console)
    outcome = run_experiment(exp, ctx)
    return store_outcome(store, base_fields(exp, exp.config_hash(), "test", "cpu", split_info(split)), outcome, 0.0)


# --- reading a model request (for scripts whose answers depend on what was asked) -------------------------

def prompt_of(body) -> str:
    """The prompt text of a chat or Responses request body."""
    parts = body["messages"][0]["content"] if "messages" in body else body["input"][0]["content"]
    return next(c["text"] for c in parts if c["type"] in ("text", "input_text"))


def image_of(body):
    """(the request's image as a PIL image, its detail field)."""
    import io

    from PIL import Image

    if "messages" in body:
        part = next(c for c in body["messages"][0]["content"] if c["type"] == "image_url")["image_url"]
        url, detail = part["url"], part.get("detail")
    else:
        part = next(c for c in body["input"][0]["content"] if c["type"] == "input_image")
        url, detail = part["image_url"], part.get("detail")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), detail
