"""A tiny scripted OpenAI-compatible endpoint for testing the litellm boundary exactly.

The project's simulator is the realistic stand-in; this stub answers each request as its
``model`` name scripts it, so a test can get one exact answer (a 429 with ``retry-after-ms``,
a 400 ``context_length_exceeded``, a dropped connection) through the real ``litellm.completion``.

Model names: ``ok``; ``status-<code>`` (that status with an OpenAI error body; 429s carry
``retry-after-ms: 1500``); ``ctx`` (400 context_length_exceeded); ``drop`` (close without an
answer); ``slow`` (answer after 2 s); ``seq-<a>-<b>-...`` (each item in turn, per stub, the last
one repeating), e.g. ``seq-status.429-ok``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RATE_HEADERS = {
    "x-ratelimit-limit-requests": "600",
    "x-ratelimit-remaining-requests": "599",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-tokens": "149000",
    "x-request-id": "req-stub",
}


def completion_body(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: ProviderStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        model = str(request.get("model", "ok"))
        self.server.calls[model] += 1
        self._answer(self.server.step(model), model)

    def _answer(self, step: str, model: str) -> None:
        if step == "drop":
            self.close_connection = True
            self.connection.close()
            return
        if step == "slow":
            time.sleep(2.0)
            step = "ok"
        if step == "ok":
            self._send(200, completion_body(model), RATE_HEADERS)
        elif step == "ctx":
            body = {
                "error": {
                    "message": "This model's maximum context length is 128000 tokens.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            }
            self._send(400, body, {"x-request-id": "req-ctx"})
        else:
            status = int(step.split(".")[-1])
            body = {"error": {"message": f"stub {status}", "type": "stub", "code": str(status)}}
            headers = {"x-request-id": f"req-{status}"}
            if status == 429:
                headers |= {"retry-after-ms": "1500", "retry-after": "2"}
            self._send(status, body, headers)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class ProviderStub(ThreadingHTTPServer):
    """Serve on a free loopback port: ``with ProviderStub() as stub: stub.base_url``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) breaks the pipe; nothing to report

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def step(self, model: str) -> str:
        if not model.startswith("seq-"):
            return model.replace("status-", "status.") if model.startswith("status-") else model
        steps = model[4:].split("-")
        with self._lock:
            n = self.calls[model] - 1
        return steps[min(n, len(steps) - 1)]

    def __enter__(self) -> ProviderStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)
