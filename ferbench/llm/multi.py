"""Several images per request, as Lian et al. (2023, "GPT-4V with Emotion") asked GPT-4V about 20 at a time.

Each image of a request is introduced by its label, ``Image <k> (id <id>)``; the strategy reads one answer per
image, matched by id where the answer gives one, else by position (:mod:`ferbench.llm.strategies.base`).
Lian et al.'s rule on a miscount (an answer that does not name every image exactly once): the same request is
asked again once; if it miscounts again it is split, 20 -> 10 -> 5 -> 1 (halving while a half holds five
images or more, then one image per request), each part under the same rule. Every attempt is paid and counted;
the raw text of every request, miscounts included, goes to the answers journal.

A request's response is cached under its own key (the request as sent, with the labels, and the hashes of its
images in order); the journal keeps each image's final answer, so a resumed run asks only images without one.
"""
from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import replace

from .cache import cache_key
from .client import Answer, finish_text
from .cost import image_tokens
from .strategies import image_label

MAX_BUDGET = 200_000


def next_size(n: int) -> int:
    """The request size a miscounted batch of ``n`` images is split into (Lian et al.: 20 -> 10 -> 5 -> 1)."""
    half = n // 2
    return half if half >= 5 else 1


def chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def request_tokens(prompt: str, ids: list[str], image_size: int, detail: str) -> int:
    """Estimated prompt tokens of one request of ``ids``: text at ~4 characters a token, chat framing, images."""
    labels = sum(len(image_label(k + 1, i)) for k, i in enumerate(ids))
    return math.ceil((len(prompt) + labels) / 4) + 12 + 4 * len(ids) + len(ids) * image_tokens(image_size, detail)


def budget(max_completion_tokens: int, n: int) -> int:
    """The completion budget of a request of ``n`` images: max_completion_tokens is per image."""
    return min(MAX_BUDGET, max_completion_tokens * n)


class Several:
    """Asks the requests of several images for one running LLM experiment (``run``: its ``_Run``)."""

    def __init__(self, run, per_request: int):
        self.run, self.per = run, per_request
        self.stats = {"requests": 0, "miscounts": 0, "splits": 0, "split_images": 0}
        self.extra_tokens = [0, 0, 0]  # prompt, completion, reasoning of requests whose answers were not used

    def units(self, ids: list[str]) -> list[list[str]]:
        return chunks(ids, self.per)

    def _request(self, ids: list[str]) -> dict:
        a = self.run.strategy.ask(self.run.sopts, ids)
        return {"prompt": a.prompt, "response_format": a.response_format, "extra_body": a.extra_body}

    def _images(self, ids: list[str], with_png: bool = True) -> list:
        return [(image_label(k + 1, i), self.run.pngs[i] if with_png else None) for k, i in enumerate(ids)]

    def _key(self, ids: list[str], req: dict) -> str:
        r = self.run
        body = r.endpoint.body(self._images(ids, False), budget(r.ep.max_completion_tokens, len(ids)), req)
        return cache_key(server=r.server, request=body,
                         image=b"".join(hashlib.sha256(r.pngs[i]).digest() for i in ids))

    def ask(self, ids: list[str], split: bool = False) -> list[dict]:
        """Final records of ``ids``: asked together, again once on a miscount, then split."""
        r = self.run
        if len(ids) == 1:
            rec = r._ask(ids[0])
            return [{**rec, "split": True} if split else rec]
        req, key = self._request(ids), None
        key = self._key(ids, req)
        hit = r.cache.get(key)
        if hit is not None:
            ans = finish_text(Answer(hit["text"], "ok", hit["finish_reason"], hit["prompt_tokens"],
                                     hit["completion_tokens"], hit["reasoning_tokens"], True, 0), r.key, r.endpoint.text_limit)
            answers = r.strategy.split(ans.text, ids)
            if answers is not None:
                with r.lock:
                    r.stats["cache_hits"] += 1
                return [{**rec, "cached": True} for rec in self._records(ids, ans, answers, "cache", split)]
        for _ in range(2):
            ans = r.endpoint.ask(self._images(ids), budget(r.ep.max_completion_tokens, len(ids)), r.meter, req)
            rid = self._journal(ids, ans)
            if ans.status in ("error", "not_sent") or ans.refusal or ans.finish_reason == "content_filter":
                # the whole request failed, was refused or was blocked: so was every image in it
                return [r._record(i, replace(ans, **_share(ans, len(ids), n)), "sync", extra={"request": rid})
                        for n, i in enumerate(ids)]
            answers = r.strategy.split(ans.text, ids)
            if answers is not None:
                if ans.status == "ok":
                    r.cache.put(key, {"text": ans.text, "finish_reason": ans.finish_reason, "status": "ok",
                                      "prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens,
                                      "reasoning_tokens": ans.reasoning_tokens})
                return self._records(ids, ans, answers, "sync", split, rid)
            with r.lock:
                self.stats["miscounts"] += 1
                self.extra_tokens = [a + b for a, b in zip(self.extra_tokens, (
                    ans.prompt_tokens, ans.completion_tokens, ans.reasoning_tokens))]
        with r.lock:
            self.stats["splits"] += 1
        out: list[dict] = []
        for part in chunks(ids, next_size(len(ids))):
            out += self.ask(part, split=True)
        return out

    def _journal(self, ids: list[str], ans: Answer) -> str:
        """The whole raw answer of one request (the per-image records hold their own lines)."""
        rid = "request:" + uuid.uuid4().hex[:16]
        with self.run.lock:
            self.stats["requests"] += 1
        self.run.journal.append({"id": rid, "kind": "request", "ids": ids, "text": ans.text, "status": ans.status,
                                 "finish_reason": ans.finish_reason, "refusal": ans.refusal, "error": ans.error,
                                 "prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens})
        return rid

    def _records(self, ids, ans: Answer, answers: list[str], via: str, split: bool, rid: str | None = None) -> list[dict]:
        extra = {"segment": True, **({"request": rid} if rid else {}), **({"split": True} if split else {})}
        if split:
            with self.run.lock:
                self.stats["split_images"] += len(ids)
        return [self.run._record(i, replace(ans, text=a, **_share(ans, len(ids), n)), via, extra=extra)
                for n, (i, a) in enumerate(zip(ids, answers))]


def _share(ans: Answer, n: int, i: int) -> dict:
    """Image ``i``'s share of a request's tokens (integer parts; the first image takes the remainder), so
    that per-image records add up to what the request used."""
    def part(v: int) -> int:
        return v // n + (v % n if i == 0 else 0)
    return {"prompt_tokens": part(ans.prompt_tokens), "completion_tokens": part(ans.completion_tokens),
            "reasoning_tokens": part(ans.reasoning_tokens), "attempts": ans.attempts if i == 0 else 0}
