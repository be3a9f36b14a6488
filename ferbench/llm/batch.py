"""The OpenAI Batch API path: upload a JSONL of requests, poll, download, parse.

Resumable across runs: the uploaded file id and then the batch id are recorded (``llm_batch``
state, bound to the experiment's config hash) before anything else happens, so a run killed while
the batch is pending picks it up again instead of paying twice. A batch that ends with some failed
lines records those images as errors; the next run sends only them, in a new batch.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import openai

from .client import (
    MAX_BODY_BYTES,
    Answer,
    BadAnswer,
    Endpoint,
    EndpointFailure,
    answer_from_json,
    finish_text,
    redact,
)
from .cost import Spend, cost_usd

STATE = "llm_batch"
MAX_LINES = 50_000  # the Batch API's limit per batch
TERMINAL = {"completed", "failed", "expired", "cancelled"}


@dataclass
class BatchOutcome:
    answers: dict[str, Answer]  # image id -> answer, for the images the batch answered (or failed)
    pending: str | None = None  # a batch id still running when this run stopped waiting
    status: str | None = None
    batch_id: str | None = None
    reserved_usd: float = 0.0  # worst case still reserved for a pending batch


def _read_capped(stream_ctx, limit: int) -> bytes:
    with stream_ctx as resp:
        out, size = [], 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise BadAnswer(f"batch result file over {limit} bytes: not read")
            out.append(chunk)
        return b"".join(out)


class BatchRunner:
    def __init__(self, endpoint: Endpoint, store, eid: str, config_hash: str, spend: Spend, *, prompt_tokens: int,
                 wait: float, poll_interval: float, sleep=time.sleep, log=print):
        self.e, self.store, self.eid, self.h, self.prompt_tokens = endpoint, store, eid, config_hash, prompt_tokens
        self.spend, self.wait, self.poll, self.sleep, self.log = spend, wait, poll_interval, sleep, log
        self.client = endpoint.client

    # --- state -------------------------------------------------------------------------------------
    def state(self) -> dict | None:
        st = self.store.read_state(self.eid, STATE)
        return st if st and st.get("config_hash") == self.h and st.get("open") else None

    def _save(self, st: dict) -> None:
        self.store.write_state(self.eid, STATE, {**st, "config_hash": self.h})

    def abandon(self, st: dict) -> None:
        """Forget a recorded job (best effort: cancel it, so it is not billed for answers nobody reads)."""
        bid = st.get("batch_id")
        if bid:
            try:
                self.client.batches.cancel(bid)
            except openai.OpenAIError:
                pass
        self.close({"abandoned": bid})

    def close(self, note: dict | None = None) -> None:
        self.store.write_state(self.eid, STATE, {"config_hash": self.h, "open": False, **(note or {})})

    # --- submit ------------------------------------------------------------------------------------
    def submit(self, items: list[tuple[str, bytes]], budget: int) -> tuple[dict, list[str]]:
        """Upload and start a batch for as many items as the cost cap allows; (state, ids not sent)."""
        worst = cost_usd(self.e.ep, self.prompt_tokens, budget, batch=True) or 0.0
        sent, skipped, reserved = [], [], 0.0
        for iid, png in items[:MAX_LINES]:
            if self.spend.reserve(worst):
                sent.append((iid, png))
                reserved += worst
            else:
                skipped.append(iid)
        skipped += [iid for iid, _ in items[MAX_LINES:]]
        if not sent:
            return {}, skipped
        url = "/v1/responses" if self.e.ep.api == "responses" else "/v1/chat/completions"
        ids = [iid for iid, _ in sent]
        lines = [json.dumps({"custom_id": f"r{n}", "method": "POST", "url": url, "body": _flat(self.e.body(png, budget))})
                 for n, (_, png) in enumerate(sent)]
        data = ("\n".join(lines) + "\n").encode()
        st = {"open": True, "ids": ids, "budget": budget, "reserved_usd": reserved, "endpoint": url,
              "request": {k: v for k, v in self.e.body(None, budget).items() if k not in ("messages", "input")}}
        f = self.client.files.create(file=("ferbench-batch.jsonl", data, "application/jsonl"), purpose="batch")
        st["input_file_id"] = f.id
        self._save(st)  # before the batch exists: a kill now is found again by its input file
        b = self.client.batches.create(input_file_id=f.id, endpoint=url, completion_window="24h",
                                       metadata={"ferbench_experiment": self.eid[:500]})
        st.update(batch_id=b.id, submitted=time.time())
        self._save(st)
        self.log(f"batch {b.id}: {len(ids)} request(s) submitted")
        return st, skipped

    def _find_batch(self, st: dict) -> str | None:
        """The batch made from the recorded input file (the run was killed before recording its id)."""
        for b in self.client.batches.list(limit=100):
            if getattr(b, "input_file_id", None) == st["input_file_id"]:
                return b.id
        return None

    # --- wait and collect --------------------------------------------------------------------------
    def collect(self, st: dict) -> BatchOutcome:
        bid = st.get("batch_id") or self._find_batch(st)
        if bid is None:  # uploaded, never started: start it now
            b = self.client.batches.create(input_file_id=st["input_file_id"], endpoint=st["endpoint"],
                                           completion_window="24h", metadata={"ferbench_experiment": self.eid[:500]})
            bid = b.id
        st["batch_id"] = bid
        self._save(st)
        t0 = time.monotonic()
        while True:
            try:
                b = self.client.batches.retrieve(bid)
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise EndpointFailure(redact(f"batch {bid}: {type(exc).__name__}: {exc}", self.e.key)) from None
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError):
                b = None  # transient: ask again at the next poll
            if b is not None and b.status in TERMINAL:
                break
            if time.monotonic() - t0 >= self.wait:
                return BatchOutcome({}, pending=bid, status=getattr(b, "status", None), batch_id=bid,
                                    reserved_usd=float(st.get("reserved_usd", 0.0)))
            self.sleep(self.poll)
        return self._parse(st, b)

    def _parse(self, st: dict, b) -> BatchOutcome:
        ids = st["ids"]
        by_cid = {f"r{n}": iid for n, iid in enumerate(ids)}
        answers: dict[str, Answer] = {}
        limit = len(ids) * 65536 + MAX_BODY_BYTES
        for fid in (b.output_file_id, b.error_file_id):
            if not fid:
                continue
            raw = _read_capped(self.client.files.with_streaming_response.content(fid), limit)
            for line in raw.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue  # a line that is not JSON names no image: those images stay unanswered
                iid = by_cid.get(obj.get("custom_id")) if isinstance(obj, dict) else None
                if iid is None or iid in answers:
                    continue
                answers[iid] = self._line_answer(obj)
        why = f"no result in batch {b.id} (status {b.status})"
        if b.status == "failed" and getattr(b, "errors", None) is not None:
            msgs = [getattr(e, "message", "") for e in (b.errors.data or [])][:3]
            why += ": " + redact("; ".join(m for m in msgs if m), self.e.key)[:300]
        for iid in ids:
            answers.setdefault(iid, Answer(None, "error", attempts=1, error=why))
        return BatchOutcome(answers, status=b.status, batch_id=b.id, reserved_usd=float(st.get("reserved_usd", 0.0)))

    def _line_answer(self, obj: dict) -> Answer:
        resp = obj.get("response") if isinstance(obj.get("response"), dict) else None
        err = obj.get("error")
        if resp is None or err:
            msg = err.get("message") if isinstance(err, dict) else None
            return Answer(None, "error", attempts=1, error=redact(f"batch line failed: {str(msg)[:300]}", self.e.key))
        code, body = resp.get("status_code"), resp.get("body")
        if code != 200:
            e = body.get("error") if isinstance(body, dict) else None
            msg = e.get("message") if isinstance(e, dict) else ""
            if isinstance(e, dict) and e.get("code") in ("unsupported_parameter", "unsupported_value"):
                self.e.adapt.apply(str(e.get("param") or "").split(".")[0], e["code"], str(msg))
            return Answer(None, "error", attempts=1, error=redact(f"batch line HTTP {code}: {str(msg)[:300]}", self.e.key))
        try:
            ans = answer_from_json(body, self.e.ep.api)
        except BadAnswer as exc:
            return Answer(None, "error", attempts=1, error=str(exc))
        ans.attempts = 1
        return finish_text(ans, self.e.key, self.e.text_limit)


def _flat(body: dict) -> dict:
    """A batch line carries the JSON body itself: fields beyond OpenAI's (``extra_body``) merged in."""
    extra = body.pop("extra_body", None)
    return {**body, **extra} if extra else body
