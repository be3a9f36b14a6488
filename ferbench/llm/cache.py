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

_FIELDS = {"text": (str, type(None)), "finish_reason": (str, type(None)), "prompt_tokens": int,
           "completion_tokens": int, "reasoning_tokens": int, "status": str}


def default_dir() -> Path:
    return cache_root() / "llm"


def cache_key(*, server: dict, request: dict, image: bytes) -> str:
    """``server``: base_url, provider, api_version, api; ``request``: the request body without the image."""
    payload = {"server": server, "request": request, "image_sha256": hashlib.sha256(image).hexdigest()}
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
        try:
            p = self._path(key)
            if p.stat().st_size > 1 << 16:
                return None
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or rec.get("status") != "ok":
            return None
        if not all(isinstance(rec.get(k), t) for k, t in _FIELDS.items()):
            return None
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
        try:
            p = self._meta_path(name)
            if p.stat().st_size > 1 << 16:
                return None
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) else None

    def put_meta(self, name: str, obj: dict) -> None:
        if self.enabled:
            atomic_write_json(self._meta_path(name), obj)
