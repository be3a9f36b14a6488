"""Run one LLM endpoint over a study's stratified sample; answers are written as they arrive.

Order of work for one experiment: answers already journaled under this exact config and these exact
images are reused; then the response cache; then the first remaining image is asked alone (it
teaches the endpoint's quirks, see :class:`~ferbench.llm.client.Adaptations`, and measures the
real prompt size before concurrency starts); then the rest, concurrently or as one Batch API job.
"""
from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.dataset import FERData
from ..data.splits import SplitData
from ..errors import FerbenchError
from ..metrics import summarize
from ..schema.results import (EvalMetrics, LLMAdaptation, LLMBatch, LLMEstimate, LLMFields, LLMRequest, LLMSample,
                              LLMSeveral, LLMUsage, UnparsedAnswer)
from ..store import RunStore
from .batch import BatchRunner
from .cache import ResponseCache, cache_key
from .client import (
    Adaptations,
    Answer,
    Endpoint,
    EndpointFailure,
    default_token_param,
    finish_text,
    redact,
    retry_budget,
)
from .cost import (
    Meter,
    Spend,
    check_max_cost,
    cost_usd,
    expected_completion_tokens,
    prompt_tokens_estimate,
)
from .items import MANIFEST, item_prompts
from .multi import Several, budget, request_tokens
from .outcomes import outcome, outcome_counts, ranking_cell, top_k_accuracy
from .parse import contempt_folded
from .providers import provider
from .sampler import stratified_sample
from .serving import base_url as resolve_base_url
from .serving import check_server, endpoint_key, throughput
from .sweeps import collapse_repeats, request_items, shown_images
from .strategies import Strategy, StrategyOptions, strategy

SPEND_STATE, ADAPT_STATE = "llm_spend", "llm_adaptations"
MAX_JOURNAL_TEXT = 16000  # the longest answer text a strategy keeps (reasoning)


@dataclass
class LLMRunOptions:
    """How a run treats its LLM experiments (built by the runner from CLI flags, one object per run).

    ``spend`` is shared by every LLM experiment of the run, so ``max_cost`` caps them together; call
    :meth:`preload_spend` with all of them first so earlier runs' spend on resumed answers counts
    from the start. ``adaptations`` remembers, per endpoint, the request changes a server forced.
    """
    no_cache: bool = False
    refresh: bool = False
    max_cost: float | None = None
    cache_dir: Path | None = None
    sleep: Callable[[float], None] = time.sleep
    spend: Spend = field(init=False)
    adaptations: dict[str, Adaptations] = field(default_factory=dict)

    def __post_init__(self):
        self.spend = Spend(self.max_cost)

    def preload_spend(self, store: RunStore, llm_experiments) -> None:
        if self.refresh:
            return
        for exp in llm_experiments:
            past = store.read_state(exp.id, SPEND_STATE)
            if past and str(past.get("config_hash", "")).startswith(exp.config_hash()):
                self.spend.add_past(exp.id, _num(past.get("usd")) + _num(past.get("pending_usd")))


@dataclass
class LLMRun:
    """What one LLM experiment produced; the kind's handler hands it to the store (nothing here writes
    a result file: predictions.csv and the sample's images travel in ``predictions`` and ``images``)."""
    fields: LLMFields
    status: str = "ok"
    error: str | None = None
    reason: str | None = None
    deviations: list[str] | None = None  # None: the experiment's own
    predictions: tuple[list[str], list[list]] | None = None  # header, rows
    images: dict[str, np.ndarray] | None = None  # the sampled images (ids, images), for the report


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else 0.0


def png_bytes(img: np.ndarray, size: int) -> bytes:
    im = Image.fromarray(img)
    if size != img.shape[0]:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def sample_partition(split: SplitData, which: str):
    if "+" in which:  # both evaluation partitions (FER2013: PublicTest + PrivateTest, 7,178 images)
        parts = [split.val, split.test]
        if parts[0] is None:
            raise ValueError("the study's split has no val partition to sample from")
        return FERData(images=np.concatenate([p.images for p in parts]), labels=np.concatenate([p.labels for p in parts]),
                       ids=np.concatenate([p.ids for p in parts]), usage=np.concatenate([p.usage for p in parts]),
                       classes=split.test.classes, source=split.test.source)
    part = split.test if which in ("test", "PrivateTest") else split.val
    if part is None:
        raise ValueError(f"the study's split has no {which} partition to sample from")
    return part


def _base_url(ep) -> str | None:
    return resolve_base_url(ep)


def strategy_of(exp, classes) -> tuple[Strategy, StrategyOptions]:
    """The experiment's prompt strategy and the settings it reads (the options: the study's classes)."""
    cfg = exp.llm
    prompt = "paper" if cfg.prompt == MANIFEST else cfg.prompt  # manifest: each request carries its item's own
    return strategy(cfg.strategy), StrategyOptions(tuple(classes), top_k=min(cfg.top_k, len(classes)),
                                                   structured_via=cfg.structured_via, prompt=prompt)


def images_per_request(exp) -> int:
    return exp.llm_endpoint.images_per_request or exp.llm.images_per_request


def _sample(exp, split):
    cfg = exp.llm
    part = sample_partition(split, cfg.sample.split)
    idx, notes = stratified_sample(part.labels, part.ids, cfg.sample.per_class, cfg.sample.seed, len(split.classes))
    return part, idx, notes


def _image_note(size: int, images: np.ndarray) -> str:
    """'224x224 PNG (RGB, bicubic upscale)': what the endpoint was shown."""
    native = images.shape[1]
    how = "original" if size == native else ("bicubic upscale" if size > native else "bicubic downscale")
    return f"{size}x{size} PNG ({'grayscale' if images.ndim == 3 else 'RGB'}, {how})"


def estimate_llm_experiment(exp, split: SplitData) -> LLMEstimate:
    """What an LLM experiment would send and cost; sends nothing (for dry runs and cost checks)."""
    ep, cfg = exp.llm_endpoint, exp.llm
    part, idx, _ = _sample(exp, split)
    strat, sopts = strategy_of(exp, split.classes)
    if images_per_request(exp) > 1:
        return _estimate_several(exp, strat.ask(sopts, ["0"]).prompt, strat, sopts, [str(i) for i in part.ids[idx]])
    items = item_prompts(exp, split, [str(i) for i in part.ids[idx]])
    prompt = items.longest() if items else strat.ask(sopts, ["0"]).prompt  # manifest: the longest, an upper bound
    n = len(idx) * cfg.repeats  # repeats: one request per answer
    pt = prompt_tokens_estimate(prompt, cfg.image_size, ep.detail)
    ct, why = expected_completion_tokens(ep)
    n_batch = max(n - 1, 0) if ep.batch else 0  # one image goes alone first (see the module docstring)
    n_sync = n - n_batch

    def total(c):
        a, b = cost_usd(ep, pt * n_sync, c * n_sync), cost_usd(ep, pt * n_batch, c * n_batch, batch=True)
        return None if a is None else a + b

    return LLMEstimate(requests=n, batch_requests=n_batch, prompt_tokens_per_request=pt,
                       completion_tokens_per_request=ct, completion_assumption=why,
                       estimated_prompt_tokens=pt * n, estimated_completion_tokens=ct * n,
                       estimated_cost_usd=total(ct), max_cost_usd=total(ep.max_completion_tokens),
                       prices_per_1m=None if not ep.priced else [ep.price_input_per_1m, ep.price_output_per_1m],
                       batch_price_factor=ep.batch_price_factor if ep.batch else None)


def _estimate_several(exp, prompt1: str, strat: Strategy, sopts: StrategyOptions, ids: list[str]) -> LLMEstimate:
    """Requests of ``images_per_request`` labelled images: fewer requests, each with every image's tokens, and
    a completion budget of max_completion_tokens per image (what the --max-cost reservation holds)."""
    ep, cfg, per = exp.llm_endpoint, exp.llm, images_per_request(exp)
    groups = [ids[i:i + per] for i in range(0, len(ids), per)] or [[]]
    pts = [request_tokens(strat.ask(sopts, g).prompt if len(g) > 1 else prompt1, g, cfg.image_size, ep.detail)
           for g in groups if g]
    ct, why = expected_completion_tokens(ep)
    cts = [ct * len(g) for g in groups if g]
    worst = [budget(ep.max_completion_tokens, len(g)) for g in groups if g]

    def total(c):
        return sum(cost_usd(ep, p, x) or 0.0 for p, x in zip(pts, c)) if ep.priced else None

    return LLMEstimate(requests=len(pts), prompt_tokens_per_request=max(pts, default=0),
                       completion_tokens_per_request=max(cts, default=0),
                       completion_assumption=f"{why}, per image; {per} images per request",
                       estimated_prompt_tokens=sum(pts), estimated_completion_tokens=sum(cts),
                       estimated_cost_usd=total(cts), max_cost_usd=total(worst),
                       prices_per_1m=None if not ep.priced else [ep.price_input_per_1m, ep.price_output_per_1m])


def _usd(v: float | None) -> str:
    return "unpriced" if v is None else f"${v:,.2f}" if v >= 1 else f"${v:.4f}"


def _dry_run_reason(ep, est: LLMEstimate) -> str:
    return (f"dry run: {est.requests} requests would be sent to {ep.model}"
            + (f" ({est.batch_requests} through the Batch API)" if ep.batch else "")
            + f", ~{est.estimated_prompt_tokens:,} prompt + ~{est.estimated_completion_tokens:,} completion "
              f"tokens, estimated cost {_usd(est.estimated_cost_usd)} (at most {_usd(est.max_cost_usd)}); "
              f"completion tokens {est.completion_assumption}")


def run_llm_experiment(exp, split: SplitData, store: RunStore, console=None,
                       options: LLMRunOptions | None = None, dry_run: bool = False) -> LLMRun:
    """Ask ``exp``'s endpoint about its sample. Writes only its resume state (the answers journal, spend
    and adaptations); the result fields, predictions and sample images come back for the store.
    One :class:`LLMRunOptions` per run carries the flags and the run's spend cap (None: the defaults);
    ``dry_run`` (the run's --dry-run) estimates and sends nothing."""
    opts = options or LLMRunOptions()
    log = console.print if console is not None else (lambda *a, **k: None)  # a rich Console
    ep, cfg = exp.llm_endpoint, exp.llm
    part, idx, notes = _sample(exp, split)
    strat, sopts = strategy_of(exp, split.classes)
    asked = strat.ask(sopts, ["0"])  # one image a request (several: each request's own, see ferbench.llm.multi)
    prompt, fmt = asked.prompt, asked.response_format
    try:
        items = item_prompts(exp, split, [str(i) for i in part.ids[idx]])
    except FerbenchError as exc:
        return LLMRun(LLMFields(endpoint=ep, strategy=strat.name), "failed", error=str(exc))
    if items:
        prompt = f"{MANIFEST}: each image's own prompt from the manifest ({len(set(items.prompts.values())):,} distinct)"
    base_url = _base_url(ep)
    try:  # a colour variant on grayscale data is refused, never faked
        shown, refused = shown_images(part.images[idx], cfg.color), None
    except FerbenchError as exc:
        shown, refused = part.images[idx], str(exc)
    sample = LLMSample(split=cfg.sample.split, per_class=cfg.sample.per_class, seed=cfg.sample.seed, n=len(idx),
                       ids=part.ids[idx].tolist(), notes=notes, image=_image_note(cfg.image_size, shown))
    est = estimate_llm_experiment(exp, split)
    base = LLMFields(endpoint=ep.model_copy(update={"base_url": base_url}), prompt=prompt, response_format=fmt,
                     sample=sample, estimate=est, strategy=strat.name, parse_rule=strat.parse_rule)
    if refused:
        return LLMRun(base, "failed", error=refused)
    if dry_run:
        return LLMRun(base, "skipped", reason=_dry_run_reason(ep, est))
    try:
        check_max_cost([exp], opts.max_cost)
    except FerbenchError as exc:
        return LLMRun(base, "failed", error=str(exc))
    key = endpoint_key(ep)
    if not key:
        return LLMRun(base, "skipped", reason=f"${ep.api_key_env} is not set: LLM comparison with {ep.model} skipped "
                                              f"(set it, and OPENAI_BASE_URL or base_url for a non-OpenAI server, "
                                              f"to run it)")
    log(f"  {ep.label or ep.model}: {est.requests} image(s)"
        + (f", {est.batch_requests} through the Batch API" if ep.batch else "")
        + f"; estimated cost {_usd(est.estimated_cost_usd)}, at most {_usd(est.max_cost_usd)}"
        + (f" (--max-cost {opts.max_cost:g}, {_usd(opts.spend.remaining)} left)" if opts.max_cost is not None else ""),
        markup=False)
    if provider(ep.provider).local:  # down, locked, another model, no image input: one line, nothing sent
        try:
            base.server = check_server(ep, base_url, key)
        except EndpointFailure as exc:
            return LLMRun(base, "failed", error=redact(f"{ep.model}: {exc}", key))
    repeat_of = request_items([str(part.ids[i]) for i in idx], cfg.repeats)  # journal key -> (image id, repeat)
    first = {str(part.ids[i]): png_bytes(im, cfg.image_size) for i, im in zip(idx, shown)}
    pngs = {k: first[iid] for k, (iid, _) in repeat_of.items()}
    # bound to the config and to the very images: other data under the same ids never resumes
    h = exp.config_hash() + "-" + hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in pngs.values())).hexdigest()[:16]
    runner = _Run(exp, store, opts, log, key, base_url, asked, pngs, h, est, (strat, sopts), items)
    runner.repeat_of = repeat_of
    out = runner.run(base, part, idx, list(split.classes))
    # The sampled images stay beside the answers so the report can show them (as sent, before resizing).
    out.images = {"ids": part.ids[idx].astype(str), "images": shown}
    return out


class _Run:
    """The state of one LLM experiment while it runs."""

    def __init__(self, exp, store, opts, log, key, base_url, asked, pngs, h, est, strat, items=None):
        self.exp, self.ep, self.cfg, self.store, self.opts, self.log = exp, exp.llm_endpoint, exp.llm, store, opts, log
        self.key, self.base_url, self.pngs, self.h = key, base_url, pngs, h
        self.repeat_of: dict[str, tuple[str, int]] = {}  # journal key -> (image id, repeat index)
        self.strategy, self.sopts = strat
        self.lock = threading.Lock()
        self.stats = {"attempts": 0, "cache_hits": 0, "truncated_retries": 0}
        self.sent: list[str] = []  # images this run sends requests for, and how long those took in all
        self.query_seconds = 0.0
        ep = self.ep
        # request changes this endpoint forced before: in this run, or in an earlier run of this config
        self.cache = ResponseCache(opts.cache_dir, enabled=not opts.no_cache, refresh=opts.refresh)
        self.ident = f"{ep.provider}|{base_url}|{ep.api}|{ep.model}"
        if self.ident not in opts.adaptations:
            st = store.read_state(exp.id, ADAPT_STATE)
            known = st.get("adaptations") if st and st.get("config_hash") == h else self.cache.get_meta(self.ident)
            opts.adaptations[self.ident] = Adaptations.from_state(known, default_token_param(ep, base_url))
        self.endpoint = Endpoint(ep, api_key=key, base_url=base_url, prompt=asked.prompt,
                                 response_format=asked.response_format, timeout=self.cfg.timeout,
                                 max_retries=self.cfg.max_retries, adaptations=opts.adaptations[self.ident],
                                 sleep=opts.sleep, extra_body=asked.extra_body, text_limit=self.strategy.text_limit)
        per = images_per_request(exp)
        self.several = Several(self, per) if per > 1 else None
        self.items = items  # prompt: manifest: each image's own prompt and candidate labels (ferbench.llm.items)
        self.server = {"base_url": base_url or "", "provider": ep.provider, "api_version": ep.api_version, "api": ep.api}
        # money: earlier runs' spend on the answers resumed here counts against --max-cost
        self.journal = store.journal(exp.id, h)
        if opts.refresh:  # --refresh-llm: ask everything again
            self.journal.clear()
        past = store.read_state(exp.id, SPEND_STATE)
        ok = past and past.get("config_hash") == h and not opts.refresh
        self.past_usd = _num(past.get("usd")) if ok else 0.0
        self.pending_usd = _num(past.get("pending_usd")) if ok else 0.0
        self.run_usd = 0.0
        opts.spend.add_past(exp.id, self.past_usd + self.pending_usd)
        self.meter = Meter(ep, opts.spend, est.prompt_tokens_per_request, on_spent=self._spent)

    # --- bookkeeping -------------------------------------------------------------------------------
    def _spent(self, usd: float, ans) -> None:
        with self.lock:
            self.stats["attempts"] += 1
            self.run_usd += usd
            if usd:
                self._save_spend()

    def _save_spend(self) -> None:
        self.store.write_state(self.exp.id, SPEND_STATE, {"config_hash": self.h, "usd": self.past_usd + self.run_usd,
                                                          "pending_usd": self.pending_usd})

    def _save_adaptations(self) -> None:
        state = self.endpoint.adapt.to_state()
        self.store.write_state(self.exp.id, ADAPT_STATE, {"config_hash": self.h, "adaptations": state})
        if state["notes"]:
            self.cache.put_meta(self.ident, state)  # remembered for this endpoint, in every suite

    def _record(self, iid: str, ans: Answer, via: str, retried: bool = False, extra: dict | None = None) -> dict:
        rec = {"id": iid, "text": ans.text, "status": ans.status, "finish_reason": ans.finish_reason,
               "refusal": ans.refusal, **(extra or {}),
               "prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens,
               "reasoning_tokens": ans.reasoning_tokens, "usage_known": ans.usage_known, "attempts": ans.attempts,
               "error": ans.error and redact(ans.error, self.key), "via": via, "truncated_retry": retried,
               "capped": ans.capped}
        if ans.status in ("ok", "truncated"):
            self.journal.append(rec)  # a final answer: a resumed run never pays for it again
        if ans.status == "ok" and via != "cache" and not ans.refusal and not extra:
            self.cache.put(self._ck(iid), rec)  # one image's own request only (never a part of several)
        return rec

    def _item(self, key: str) -> dict | None:
        """A manifest item's own request fields (``key``: a journal key, one image or one repeat of it)."""
        return self.items.request(self.repeat_of.get(key, (key, 0))[0]) if self.items else None

    def _ck(self, iid: str) -> str:
        return cache_key(server=self.server, request=self.endpoint.body(None, self.ep.max_completion_tokens,
                                                                        self._item(iid)),
                         image=self.pngs[iid], repeat=self.repeat_of.get(iid, (iid, 0))[1])

    # --- asking ------------------------------------------------------------------------------------
    def _ask(self, iid: str) -> dict:
        try:
            return self._ask_unguarded(iid)
        except EndpointFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever an endpoint does costs one image, not the experiment
            msg = redact(f"unexpected {type(exc).__name__}: {exc}", self.key)[:500]
            return self._record(iid, Answer(None, "error", attempts=1, error=msg), "sync")

    def _ask_unguarded(self, iid: str) -> dict:
        e, budget = self.endpoint, self.ep.max_completion_tokens
        ans = e.ask(self.pngs[iid], budget, self.meter, self._item(iid))
        retried = False
        if ans.status == "truncated" and self.ep.truncation_retry_factor > 1:
            first = ans
            ans = e.ask(self.pngs[iid], retry_budget(self.ep, budget), self.meter, self._item(iid))
            if ans.status == "not_sent":
                ans = first
            else:
                ans.prompt_tokens += first.prompt_tokens
                ans.completion_tokens += first.completion_tokens
                ans.reasoning_tokens += first.reasoning_tokens
                ans.attempts += first.attempts
                retried = True
                with self.lock:
                    self.stats["truncated_retries"] += 1
        return self._record(iid, ans, "sync", retried)

    def _ask_unit(self, unit: list[str]) -> list[dict]:
        """The records of one request's images (several: see ferbench.llm.multi)."""
        if self.several is None or len(unit) == 1:
            return [self._ask(unit[0])]
        try:
            return self.several.ask(unit)
        except EndpointFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - as in _ask: one request's images, not the experiment
            msg = redact(f"unexpected {type(exc).__name__}: {exc}", self.key)[:500]
            return [self._record(i, Answer(None, "error", attempts=1, error=msg), "sync") for i in unit]

    def _fan_out(self, units: list[list[str]], records: dict) -> None:
        """Ask for ``units`` (each one request) with ``concurrency`` requests in flight. Ctrl-C stops sending at
        once: queued requests are cancelled, the ones on the wire are waited for and journaled (they are paid for)."""
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency)
        try:
            futures = [pool.submit(self._ask_unit, u) for u in units]
            for f in as_completed(futures):
                for rec in f.result():
                    records[rec["id"]] = rec
        except KeyboardInterrupt:
            self.endpoint.interrupt()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    def run(self, base: LLMFields, part, idx, classes: list[str]) -> LLMRun:
        ep, opts = self.ep, self.opts
        done = self.journal.read()
        records: dict[str, dict] = {}
        todo = []
        for iid in self.pngs:
            old = _resumed(iid, done.get(iid), self.key)
            if old is not None:
                records[iid] = old
                continue
            hit = self.cache.get(self._ck(iid)) if self.several is None else None  # several: cached per request
            if hit is not None:
                ans = finish_text(Answer(hit["text"], "ok", hit["finish_reason"], hit["prompt_tokens"],
                                         hit["completion_tokens"], hit["reasoning_tokens"], True, 0), self.key)
                records[iid] = {**self._record(iid, ans, "cache"), "cached": True}
                self.stats["cache_hits"] += 1
                continue
            todo.append(iid)
        failure = pending = None
        batch_info = None
        self.sent, t0 = list(todo), time.monotonic()  # timed: a local model's cost is time
        try:
            batch = BatchRunner(self.endpoint, self.store, self.exp.id, self.h, opts.spend,
                                prompt_tokens=self.meter.prompt_estimate, wait=self.cfg.batch_wait,
                                poll_interval=self.cfg.batch_poll_interval, sleep=opts.sleep,
                                log=self.log) if ep.batch else None
            open_batch = batch.state() if batch else None
            if open_batch and opts.refresh:  # --refresh-llm: the pending job's answers are not wanted
                batch.abandon(open_batch)
                open_batch = None
            units = self.several.units(todo) if self.several else [[i] for i in todo]
            if units and not open_batch:
                # alone: adapt to the server and measure the prompt before fanning out
                records.update((r["id"], r) for r in self._ask_unit(units.pop(0)))
            if batch is not None:
                pending, batch_info = self._batch(batch, open_batch, [u[0] for u in units], records)
            elif units:
                self._fan_out(units, records)
        except EndpointFailure as exc:
            failure = redact(f"{ep.model}: {exc}", self.key)
        finally:
            self.query_seconds = time.monotonic() - t0
            self._save_adaptations()
            with self.lock:
                self._save_spend()
        if failure:
            return self._extras(records, LLMRun(base, "failed", error=failure))
        if pending:
            base.batch = LLMBatch(**batch_info)
            return self._extras(records, LLMRun(base, "pending", reason=(
                f"Batch API job {pending} not finished after waiting {self.cfg.batch_wait:g} s; re-run to collect it "
                "(nothing is sent again)")))
        return self._finish(base, part, idx, classes, records, batch_info)

    def _batch(self, batch: BatchRunner, st: dict | None, todo: list[str], records: dict):
        info = None
        if st is None and todo:
            batch.prompt_tokens = self.meter.prompt_estimate
            st, skipped = batch.submit([(iid, self.pngs[iid]) for iid in todo], self.ep.max_completion_tokens)
            for iid in skipped:
                records[iid] = self._record(iid, Answer(None, "not_sent", error="not sent: --max-cost reached"), "batch")
            if st:
                with self.lock:  # the reservation lives in this run's Spend; on disk for a killed run
                    self.pending_usd = st["reserved_usd"]
                    self._save_spend()
                    self.pending_usd, reserved_here = 0.0, st["reserved_usd"]
            st = st or None
        else:
            reserved_here = 0.0
        if st is None:
            return None, info
        out = batch.collect(st)
        info = {"batch_id": out.batch_id, "status": out.status, "requests": len(st["ids"]),
                "input_file_id": st.get("input_file_id")}
        if out.pending:
            with self.lock:
                self.pending_usd = out.reserved_usd
            return out.pending, info
        # settled: the worst case reserved for the batch becomes its real cost
        actual = 0.0
        for iid, ans in out.answers.items():
            if ans.usage_known:
                actual += cost_usd(self.ep, ans.prompt_tokens, ans.completion_tokens, batch=True) or 0.0
            elif ans.status == "ok":
                actual += cost_usd(self.ep, self.meter.prompt_estimate, st["budget"], batch=True) or 0.0
        with self.lock:
            if reserved_here:
                self.opts.spend.settle(reserved_here, actual)
            else:  # reserved by an earlier run and counted as its past spend
                self.opts.spend.add_past(self.exp.id, self.past_usd)
                self.opts.spend.settle(0.0, actual)
            self.run_usd += actual
            self.pending_usd = 0.0
            self._save_spend()
        info["cost_usd"] = actual if self.ep.priced else None
        retry = []
        for iid, ans in out.answers.items():
            if ans.status == "truncated" and self.ep.truncation_retry_factor > 1:
                retry.append(iid)  # asked again at once, synchronously, with the larger budget
            else:
                records[iid] = self._record(iid, ans, "batch")
        batch.close({"last_batch": out.batch_id, "status": out.status})
        for iid in retry:
            first = out.answers[iid]
            ans = self.endpoint.ask(self.pngs[iid], retry_budget(self.ep, st["budget"]), self.meter)
            if ans.status == "not_sent":
                ans = first
            else:
                ans.prompt_tokens += first.prompt_tokens
                ans.completion_tokens += first.completion_tokens
                self.stats["truncated_retries"] += 1
            records[iid] = self._record(iid, ans, "batch+sync", retried=ans is not first)
        info["failed_lines"] = sum(out.answers[i].status == "error" for i in out.answers)
        return None, info

    # --- result ------------------------------------------------------------------------------------
    def _extras(self, records: dict, out: LLMRun) -> LLMRun:
        """``out`` with the usage, adaptations, request and deviations of this run filled in."""
        ep, fields = self.ep, out.fields
        recs = list(records.values())
        xp, xc, xr = self.several.extra_tokens if self.several else (0, 0, 0)  # miscounted requests, paid too
        pt = xp + sum(int(r.get("prompt_tokens") or 0) for r in recs)
        ct = xc + sum(int(r.get("completion_tokens") or 0) for r in recs)
        rt = xr + sum(int(r.get("reasoning_tokens") or 0) for r in recs)
        cost = None
        if ep.priced:
            cost = cost_usd(ep, xp, xc) + sum(cost_usd(ep, int(r.get("prompt_tokens") or 0), int(r.get(
                "completion_tokens") or 0), batch=r.get("via") == "batch") for r in recs)
        if self.several:
            fields.several = LLMSeveral(images_per_request=self.several.per, **self.several.stats)
        adapt = self.endpoint.adapt
        fields.usage = LLMUsage(
            requests_sent=self.stats["attempts"], cache_hits=self.stats["cache_hits"],
            resumed_answers=sum(bool(r.get("resumed")) for r in recs), truncated_retries=self.stats["truncated_retries"],
            prompt_tokens=pt, completion_tokens=ct, reasoning_tokens=rt, estimated_cost_usd=cost,
            cost_this_run_usd=self.run_usd if ep.priced else None,
            spent_usd_all_runs=(self.past_usd + self.run_usd) if ep.priced else None,
            via_batch=sum(r.get("via", "").startswith("batch") for r in recs))
        fields.adaptations = [LLMAdaptation(**n) for n in adapt.notes]
        fields.request = LLMRequest(**{k_: v for k_, v in self.endpoint.body(None, ep.max_completion_tokens).items()
                                       if k_ not in ("messages", "input")})
        out.deviations = list(self.exp.deviations) + [_deviation(n) for n in adapt.notes]
        self._local_extras(fields, records, out)
        return out

    def _local_extras(self, fields: LLMFields, records: dict, out: LLMRun) -> None:
        """What the requests took, and what a local server was not sent (set by the request built above)."""
        asked = sum(records.get(i, {}).get("status") not in (None, "not_sent") for i in self.sent)
        fields.throughput = throughput(self.ep, self.query_seconds, asked, self.cfg.concurrency)
        not_sent = self.endpoint.not_sent
        if fields.server is not None:
            fields.server.not_sent = dict(not_sent)
        out.deviations += [f"{k} not sent: {why}" for k, why in not_sent.items() if k != "detail"]

    def _rows(self, part, idx, classes, records) -> tuple[list[list], list[list[int]]]:
        """predictions.csv rows (status: the image's outcome, see ferbench.llm.outcomes) and each image's ranking."""
        rows, rankings = [], []
        for i in idx:
            iid = str(part.ids[i])
            rec = records.get(iid) or {"status": "not_sent", "error": "not sent"}
            text = rec.get("text")
            ranking: list[str] = []
            if rec.get("status") in ("ok", "truncated") and text:
                # one line of several images' answer, or one image's whole answer
                ranking = self.strategy.ranking(text, self.sopts) if rec.get("segment") else \
                    self.strategy.parse(text, self.sopts)
            ranked = [classes.index(c) for c in ranking if c in classes and (
                self.items is None or self.items.allows(iid, c))]  # manifest: only the item's candidates count
            status = outcome(rec, ranked)
            pred = ranked[0] if status == "ok" else -1
            where = str(part.usage[i]) if "+" in self.cfg.sample.split else self.cfg.sample.split
            rows.append([iid, where, int(part.labels[i]), pred, text or rec.get("refusal") or "", status,
                         rec.get("error") or "", rec.get("finish_reason") or ""])
            rankings.append(ranked if status == "ok" else [])
        return rows, rankings

    def _finish(self, base: LLMFields, part, idx, classes, records, batch_info) -> LLMRun:
        k, all_records = len(classes), records
        if self.cfg.repeats > 1:  # each image scored by its majority answer, read by the experiment's strategy
            records, base.repeats = collapse_repeats(records, self.repeat_of, classes, self.ep.temperature,
                                                     parse=lambda t: next(iter(self.strategy.parse(t, self.sopts)), None))
        rows, rankings = self._rows(part, idx, classes, records)
        y_true = part.labels[idx]
        y_pred_a = np.array([r[3] for r in rows], dtype=np.int64)
        metrics = summarize(y_true, y_pred_a, num_classes=k, no_answer_column=True)
        metrics.update(outcome_counts([r[5] for r in rows], len(rows), metrics["accuracy"]))
        header = ["id", "split", "true", "predicted", "raw", "status", "error", "finish_reason"]
        if self.strategy.ranks:
            cells = [ranking_cell(r) for r in rankings]
            metrics.update(top_k=self.sopts.top_k, top_k_accuracy=top_k_accuracy(y_true, cells, self.sopts.top_k, k))
            header.append("ranking")
            rows = [r + [c] for r, c in zip(rows, cells)]
        base.metrics = {"sample": EvalMetrics.model_validate(metrics)}
        base.unparsed = [UnparsedAnswer(id=r[0], raw=r[4], outcome=r[5]) for r in rows
                         if r[5] in ("unparsed", "refusal", "filtered")]
        folded = sum(r[3] >= 0 and contempt_folded(r[4], classes) for r in rows)
        if folded:  # a 7-class study: recorded, never silent
            base.sample.notes.append(f"{folded} answer(s) naming contempt scored as disgust: the study has no "
                                     "contempt class")
        if batch_info:
            base.batch = LLMBatch(**batch_info)
        out = LLMRun(base, predictions=(header, rows))
        not_sent = metrics["not_sent"]
        if not_sent and self.opts.max_cost is not None and any("max-cost" in (r[6] or "") for r in rows):
            out.status, out.error = "failed", (f"stopped at --max-cost {self.opts.max_cost}: "
                                               f"{not_sent} image(s) were not sent")
        elif metrics["errors"]:
            # Not complete: a re-run asks again for exactly these images (received answers are kept).
            out.status, out.error = "failed", (f"{metrics['errors']} of {len(rows)} image(s) got no answer "
                                               "(see predictions.csv); re-run to retry them")
        return self._extras(all_records, out)


def _resumed(iid: str, old, key: str) -> dict | None:
    """A journaled final answer, checked field by field (the journal is a file anyone could have edited)."""
    if not isinstance(old, dict) or old.get("status") not in ("ok", "truncated") \
            or not isinstance(old.get("text"), (str, type(None))):
        return None

    def count(k):
        v = old.get(k)
        return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**9 else 0

    fr, refusal = old.get("finish_reason"), old.get("refusal")
    return {"id": iid, "text": finish_text(Answer(old["text"]), key, MAX_JOURNAL_TEXT).text, "status": old["status"],
            "finish_reason": fr[:40] if isinstance(fr, str) else None, "error": None,
            "refusal": finish_text(Answer(refusal[:MAX_JOURNAL_TEXT]), key).text if isinstance(refusal, str) else None,
            "segment": old.get("segment") is True,
            **{k: count(k) for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "attempts")},
            "via": old.get("via") if old.get("via") in ("sync", "batch", "batch+sync", "cache") else "sync",
            "resumed": True}


def _deviation(note: dict) -> str:
    p = note.get("param")
    if p == "temperature":
        return ("temperature not sent (server default): the endpoint refuses the configured value "
                "(the suite asked for temperature 0)")
    if p == "max_tokens":
        return "completion budget sent as max_completion_tokens: the endpoint refuses max_tokens"
    if p == "max_completion_tokens":
        return "completion budget sent as max_tokens: the endpoint refuses max_completion_tokens"
    if p in ("response_format", "text"):
        return "structured output (JSON schema) not sent: the endpoint refuses it; the prompt still asks for JSON"
    return f"request field {p!r} dropped: the endpoint refuses it"
