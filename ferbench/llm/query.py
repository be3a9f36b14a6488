"""Run one LLM endpoint over a study's stratified sample; answers are written as they arrive."""
from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np
from PIL import Image

from ..data.splits import SplitData
from ..metrics import summarize
from ..store import RunStore
from .cache import ResponseCache, cache_key
from .client import EndpointFailure, ask, make_client, redact
from .parse import parse_answer
from .prompts import get_prompt
from .sampler import stratified_sample


def png_bytes(img: np.ndarray, size: int) -> bytes:
    im = Image.fromarray(img)
    if size != img.shape[0]:
        im = im.resize((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def sample_partition(split: SplitData, which: str):
    part = split.test if which in ("test", "PrivateTest") else split.val
    if part is None:
        raise ValueError(f"the study's split has no {which} partition to sample from")
    return part


def run_llm_experiment(exp, split: SplitData, store: RunStore, console=None, *, no_cache: bool = False,
                       refresh: bool = False, dry_run: bool = False, max_cost: float | None = None,
                       cache_dir=None) -> dict:
    ep, cfg = exp.llm_endpoint, exp.llm
    part = sample_partition(split, cfg.sample.split)
    k = len(split.classes)
    idx, notes = stratified_sample(part.labels, part.ids, cfg.sample.per_class, cfg.sample.seed, k)
    prompt, fmt = get_prompt(cfg.prompt)
    sample_info = {"split": cfg.sample.split, "per_class": cfg.sample.per_class, "seed": cfg.sample.seed,
                   "n": int(len(idx)), "ids": part.ids[idx].tolist(), "notes": notes,
                   "image": f"{cfg.image_size}x{cfg.image_size} PNG (grayscale"
                            + (", bicubic upscale)" if cfg.image_size != 48 else ", original)")}
    # The sampled images stay beside the answers so the report can show them.
    store.write_arrays(exp.id, "sample_images", ids=part.ids[idx].astype(str), images=part.images[idx])
    base = {"endpoint": {**ep.model_dump(), "base_url": ep.base_url or os.environ.get("OPENAI_BASE_URL")},
            "prompt": prompt, "response_format": fmt, "sample": sample_info}
    if dry_run:
        return {**base, "status": "skipped",
                "reason": f"dry run: {len(idx)} requests would be sent to {ep.model} (prompt and sample recorded)"}
    key = os.environ.get(ep.api_key_env)
    if not key:
        return {**base, "status": "skipped",
                "reason": f"${ep.api_key_env} is not set: LLM comparison with {ep.model} skipped "
                          f"(set it, and OPENAI_BASE_URL or base_url for a non-OpenAI server, to run it)"}
    out = store.exp_dir(exp.id)
    out.mkdir(parents=True, exist_ok=True)
    journal = store.journal(exp.id, exp.config_hash())  # resume: answers received under this config
    done = journal.read()
    cache = ResponseCache(cache_dir, enabled=not no_cache, refresh=refresh)
    client = make_client(ep.base_url, key, cfg.timeout)
    params = {"temperature": ep.temperature, "max_tokens": ep.max_tokens, "detail": ep.detail}
    lock = threading.Lock()
    stats = {"requests": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
    stop = threading.Event()

    def cost_of(pt, ct):
        return ((ep.price_input_per_1m or 0) * pt + (ep.price_output_per_1m or 0) * ct) / 1e6

    def work(i: int) -> dict:
        iid = str(part.ids[i])
        if iid in done:
            return done[iid]
        png = png_bytes(part.images[i], cfg.image_size)
        ck = cache_key(model=ep.model, base_url=ep.base_url or os.environ.get("OPENAI_BASE_URL"), prompt=prompt,
                       response_format=fmt, image=png, params=params)
        hit = cache.get(ck)
        if hit is not None:
            rec = {"id": iid, **hit, "cached": True}
            with lock:
                stats["cache_hits"] += 1
        else:
            if stop.is_set():
                return {"id": iid, "text": None, "error": "not sent: --max-cost reached", "prompt_tokens": 0,
                        "completion_tokens": 0}
            ans = ask(client, model=ep.model, prompt=prompt, png=png, response_format=fmt,
                      max_retries=cfg.max_retries, **params)
            rec = {"id": iid, "text": ans.text, "error": ans.error and redact(ans.error, key),
                   "prompt_tokens": ans.prompt_tokens,
                   "completion_tokens": ans.completion_tokens, "attempts": ans.attempts}
            if ans.error is None:
                cache.put(ck, {k_: rec[k_] for k_ in ("text", "prompt_tokens", "completion_tokens")})
            with lock:
                stats["requests"] += ans.attempts
                stats["prompt_tokens"] += ans.prompt_tokens
                stats["completion_tokens"] += ans.completion_tokens
                stats["cost"] += cost_of(ans.prompt_tokens, ans.completion_tokens)
                if max_cost is not None and stats["cost"] >= max_cost:
                    stop.set()
        if rec.get("error") is None:
            journal.append(rec)
        return rec

    records: dict[str, dict] = {}
    try:
        with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
            futures = [pool.submit(work, int(i)) for i in idx]
            for f in as_completed(futures):
                rec = f.result()
                records[rec["id"]] = rec
    except EndpointFailure as exc:
        return {**base, "status": "failed", "error": redact(f"{ep.model}: {exc}", key)}

    rows, y_pred, unparsed = [], [], []
    classes = list(split.classes)
    for i in idx:
        iid = str(part.ids[i])
        rec = records[iid]
        cls = parse_answer(rec.get("text"))
        pred = classes.index(cls) if cls in classes else -1
        status = "error" if rec.get("error") else ("ok" if pred >= 0 else "unparsed")
        if status == "unparsed":
            unparsed.append({"id": iid, "raw": rec.get("text") or ""})
        rows.append([iid, cfg.sample.split, int(part.labels[i]), pred, rec.get("text") or "", status,
                     rec.get("error") or ""])
        y_pred.append(pred)
    store.write_predictions(exp.id, ["id", "split", "true", "predicted", "raw", "status", "error"], rows)
    y_true = part.labels[idx]
    y_pred_a = np.array(y_pred, dtype=np.int64)
    metrics = summarize(y_true, y_pred_a, num_classes=k)
    metrics["unparsed"] = len(unparsed)
    metrics["errors"] = sum(r[5] == "error" for r in rows)
    cost = cost_of(stats["prompt_tokens"], stats["completion_tokens"])
    all_pt = sum(r.get("prompt_tokens", 0) for r in records.values())
    all_ct = sum(r.get("completion_tokens", 0) for r in records.values())
    result = {**base, "metrics": {"sample": metrics}, "unparsed": unparsed,
              "usage": {"requests_sent": stats["requests"], "cache_hits": stats["cache_hits"],
                        "resumed_answers": len(done), "prompt_tokens": all_pt, "completion_tokens": all_ct,
                        "estimated_cost_usd": cost_of(all_pt, all_ct) if ep.price_input_per_1m is not None else None,
                        "cost_this_run_usd": cost if ep.price_input_per_1m is not None else None}}
    if stop.is_set():
        result.update(status="failed", error=f"stopped at --max-cost {max_cost}: some images were not sent")
    elif metrics["errors"]:
        # Not complete: a re-run asks again for exactly these images (received answers are kept).
        result.update(status="failed", error=f"{metrics['errors']} of {len(rows)} image(s) got no answer "
                                             "(see predictions.csv); re-run to retry them")
    return result
