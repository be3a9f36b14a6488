"""On-disk response cache, keyed by everything that determines an answer.

Key: sha256 of (model, base_url, prompt text, response format, image bytes hash, temperature,
max_tokens, detail). One JSON file per response; writes are atomic. API keys are never part of
the key or the stored record.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..atomic import atomic_write_json
from ..environment import cache_root


def default_dir() -> Path:
    return cache_root() / "llm"


def cache_key(*, model: str, base_url: str | None, prompt: str, response_format: dict | None,
              image: bytes, params: dict) -> str:
    payload = {"model": model, "base_url": base_url or "", "prompt": prompt, "response_format": response_format,
               "image_sha256": hashlib.sha256(image).hexdigest(), "params": params}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


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
            return json.loads(self._path(key).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, record: dict) -> None:
        if self.enabled:
            atomic_write_json(self._path(key), record)
