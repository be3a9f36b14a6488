"""A real HTTP server on 127.0.0.1 speaking OpenAI chat completions, scriptable per request."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Reply:
    def __init__(self, text=None, status=200, headers=None, delay=0.0):
        self.text, self.status, self.headers, self.delay = text, status, headers or {}, delay


class FakeOpenAI:
    """``script(n, image_sha256, body) -> Reply`` decides every answer; ``requests`` records them."""

    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                img = next(c for c in body["messages"][0]["content"] if c["type"] == "image_url")
                raw = base64.b64decode(img["image_url"]["url"].split(",", 1)[1])
                sha = hashlib.sha256(raw).hexdigest()
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append({"body": body, "sha": sha, "auth": self.headers.get("Authorization")})
                r = outer.script(n, sha, body)
                if r.delay:
                    time.sleep(r.delay)
                if r.status != 200:
                    return self._send(r.status, {"error": {"message": f"scripted {r.status}"}}, r.headers)
                self._send(200, {
                    "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": r.text}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 3, "total_tokens": 103}})

            def _send(self, status, obj, headers=None):
                data = json.dumps(obj).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
