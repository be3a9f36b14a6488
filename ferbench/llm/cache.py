"""On-disk response cache, keyed by everything that determines an answer.

Key: sha256 of the request as sent (model, prompt, response format, completion budget and the field
it travels in, temperature, reasoning effort, detail, API kind), the server (base URL, provider,
api-version) and the image bytes' hash. One JSON file per response; writes are atomic. API keys
are never part of the key or the stored record. Records read back are checked, never trusted.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..atomic import atomic_write_json
from ..environment import cache_root
from ..errors import ResultFormatError
from ..store import open_regular

MAX_RECORD_BYTES = 1 << 16

_FIELDS = {"text": (str, type(None)), "finish_reason": (str, type(None)), "prompt_tokens": int,
           "completion_tokens": int, "reasoning_tokens": int, "status": str}


def default_dir() -> Path:
    return cache_root() / "llm"


def cache_key(*, server: dict, request: dict, image: bytes, repeat: int = 0) -> str:
    """``server``: base_url, provider, api_version, api; ``request``: the request body without the image;
    ``repeat``: which of several sampled answers to the same request (0: the first, keyed as a single one)."""
    payload = {"server": server, "request": request, "image_sha256": hashlib.sha256(image).hexdigest()}
    if repeat:
        payload["repeat"] = repeat
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


class ResponseCache:
    def __init__(self, root: Path | None = None, enabled: bool = True, refresh: bool = False):
        self.root = Path(root) if root else default_dir()
        self.enabled, self.refresh = enabled, refresh

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if not self.enabled or self.refresh:
            return None
        rec = _read_small(self._path(key))
        if not isinstance(rec, dict) or rec.get("status") != "ok":
            return None
        if not all(isinstance(rec.get(k), t) for k, t in _FIELDS.items()):
            return None
        if any(isinstance(rec[k], bool) or not 0 <= rec[k] < 10**9 for k, t in _FIELDS.items() if t is int):
            return None  # token counts price the run: an edited record must not make it cheaper
        return {k: rec[k] for k in _FIELDS}

    def put(self, key: str, record: dict) -> None:
        if self.enabled:
            atomic_write_json(self._path(key), {k: record.get(k) for k in _FIELDS})

    # endpoint facts (the request changes a server forced), shared by every suite using that endpoint
    def _meta_path(self, name: str) -> Path:
        return self.root / "endpoints" / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.json"

    def get_meta(self, name: str) -> dict | None:
        if not self.enabled:
            return None
        d = _read_small(self._meta_path(name))
        return d if isinstance(d, dict) else None

    def put_meta(self, name: str, obj: dict) -> None:
        if self.enabled:
            atomic_write_json(self._meta_path(name), obj)


def _read_small(p: Path):
    """A cache file's JSON, or None: only a regular file (no link, FIFO or device), at most MAX_RECORD_BYTES."""
    try:
        with open_regular(p, MAX_RECORD_BYTES) as fh:
            raw = fh.read(MAX_RECORD_BYTES + 1)
        return json.loads(raw) if len(raw) <= MAX_RECORD_BYTES else None
    except (OSError, ValueError, RecursionError, ResultFormatError):
        return None
