"""Where an endpoint is, which key it gets, whether a local server can serve the study before any image is
sent, and what the requests took (a local model has no token price: its cost is time on its GPU).

A local server that is down, asks for a key, serves another model or a model without image input fails
the experiment with one line that says what to do, instead of one retried error per image.
"""
from __future__ import annotations

import os

import openai

from ..schema.llm import EndpointConfig
from ..schema.results import LLMServer, LLMThroughput
from .client import BadAnswer, EndpointFailure, decode_json, make_client, redact
from .providers import provider

MAX_LIST_BYTES = 1 << 20  # a model list is a few kB
PROBE_TIMEOUT = 15.0
LISTED = 20  # model ids kept in the result


def base_url(ep: EndpointConfig, environ=os.environ) -> str | None:
    """The suite's base_url, else the provider's variable, else a local server's documented default."""
    prov = provider(ep.provider)
    return ep.base_url or environ.get(prov.endpoint_env) or prov.default_base_url


def endpoint_key(ep: EndpointConfig, environ=os.environ) -> str | None:
    """The key from ``api_key_env``; a local server started without one accepts any, so its placeholder."""
    prov = provider(ep.provider)
    return environ.get(ep.api_key_env) or (prov.placeholder_key if prov.local else None)


def _listed(client: openai.OpenAI) -> object:
    with client.models.with_streaming_response.list() as resp:
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > MAX_LIST_BYTES:
                raise BadAnswer("model list over 1 MiB")
            chunks.append(chunk)
    return decode_json(b"".join(chunks))


def _served(model: str, ids: list[str]) -> bool:
    # Ollama names a model without a tag by its ':latest' tag (`ollama pull qwen2.5vl` lists qwen2.5vl:latest)
    return model in ids or (":" not in model and f"{model}:latest" in ids)


def _entries(listing: object) -> list[dict]:
    data = listing.get("data") if isinstance(listing, dict) else None
    return [m for m in data[:1000] if isinstance(m, dict) and isinstance(m.get("id"), str)] \
        if isinstance(data, list) else []


def check_server(ep: EndpointConfig, url: str | None, key: str) -> LLMServer:
    """Ask a local server what it serves (GET /models) before any image; :class:`EndpointFailure` with one
    clear line when it cannot serve ``ep``. A server without a model list is not held to one."""
    prov = provider(ep.provider)
    where = f"{prov.title} at {url}"
    try:
        entries = _entries(_listed(make_client(ep, key, url, PROBE_TIMEOUT)))
    except openai.APIConnectionError as exc:
        raise EndpointFailure(f"nothing answers at {url} ({type(exc).__name__}): start the {prov.title} server "
                              f"(docs/vlm-servers.md), or set base_url or ${prov.endpoint_env}") from None
    except (openai.AuthenticationError, openai.PermissionDeniedError):
        raise EndpointFailure(f"{where} refused the key: set ${ep.api_key_env} to the key the server was "
                              "started with") from None
    except openai.APIStatusError as exc:
        if exc.status_code == 503:  # llama-server while it loads its model
            raise EndpointFailure(f"{where} is not ready (HTTP 503: {redact(str(exc.message), key)[:120]}); "
                                  "run again once it has loaded its model") from None
        entries = []  # no model list on this server: nothing to check against
    except BadAnswer:
        entries = []
    ids = [m["id"][:200] for m in entries]
    if prov.model_required and ids and not _served(ep.model, ids):
        raise EndpointFailure(f"{where} does not serve model {ep.model!r}; it serves: {', '.join(ids[:10])} "
                              "(set model: to one of these)")
    for m in entries:
        mods = (m.get("architecture") or {}).get("input_modalities") if isinstance(m.get("architecture"), dict) \
            else None
        if isinstance(mods, list) and "image" not in mods:
            raise EndpointFailure(f"{where}: model {m['id'][:200]!r} takes no images (input modalities: "
                                  f"{', '.join(map(str, mods[:5]))}); serve a vision model with its projector "
                                  "(llama-server -hf <vision model>, or -m MODEL.gguf --mmproj MMPROJ.gguf)")
    return LLMServer(provider=prov.name, title=prov.title, models=ids[:LISTED], docs=list(prov.docs))


def local_endpoint_note(ep: EndpointConfig, environ=os.environ) -> str | None:
    """One line on what a local endpoint will use and lack (for ``ferbench validate``); None for a hosted API.
    Nothing is contacted: a run checks the server itself before sending any image."""
    prov = provider(ep.provider)
    if not prov.local:
        return None
    url = base_url(ep, environ)
    where = ("suite" if ep.base_url else f"${prov.endpoint_env}" if environ.get(prov.endpoint_env)
             else f"the server's default; set base_url or ${prov.endpoint_env} if it runs elsewhere")
    key = (f"key from ${ep.api_key_env}" if environ.get(ep.api_key_env)
           else f"no key (${ep.api_key_env} unset: fine unless the server was started with one)")
    time = f"GPU-seconds on {ep.gpu}" if ep.gpu else "wall time (add gpu: for GPU-seconds per 1,000 images)"
    return (f"{ep.label or ep.model}: {prov.title} at {url} ({where}); {key}; not sent: "
            f"{', '.join(prov.not_sent) or 'nothing'}; cost: unpriced local, {time}")


def throughput(ep: EndpointConfig, seconds: float, images: int, concurrency: int) -> LLMThroughput | None:
    """What this run's requests took; None when it sent none (every answer came from the cache or a journal)."""
    if images <= 0:
        return None
    gpu_s = 1000 * seconds * ep.gpu_count / images if ep.gpu else None
    return LLMThroughput(query_seconds=seconds, images=images, concurrency=concurrency,
                         images_per_second=images / seconds if seconds > 0 else None, gpu=ep.gpu,
                         gpu_count=ep.gpu_count, gpu_seconds_per_1000=gpu_s)
