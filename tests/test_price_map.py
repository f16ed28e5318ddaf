"""Which price map prices a batch is the user's choice, said out loud; unpriced models are shown.

The subprocess tests start from an environment without ``LITELLM_LOCAL_MODEL_COST_MAP`` (the
test suite's conftest sets it for everything else) and point litellm's fetch at loopback, so
nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_api_client import APIClient
from llm_api_client.tracker import APIUsageTracker
from tests.fakes import FakeCompletion, chat, litellm

REPORT = """
import json, os
import llm_api_client
from llm_api_client.providers.pricing import price_map
print(json.dumps({"map": price_map(), "env": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")}))
"""


def report(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    done = subprocess.run(
        [sys.executable, "-c", REPORT],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connections are refused


@pytest.fixture
def served_map() -> Iterator[str]:
    """litellm's own bundled map, served over loopback as if it were the current one."""
    bundled = Path(litellm.__file__).parent / "model_prices_and_context_window_backup.json"
    body = bundled.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/map.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_the_current_map_is_litellms_default_and_the_environment_is_left_alone(served_map):
    found = report(LITELLM_MODEL_COST_MAP_URL=served_map)
    assert found == {"map": {"source": "current", "reason": None}, "env": None}


@pytest.mark.slow
def test_an_unreachable_map_falls_back_to_the_bundled_one_without_touching_the_environment():
    url = f"http://127.0.0.1:{closed_port()}/map.json"
    found = report(LITELLM_MODEL_COST_MAP_URL=url)
    assert found["map"]["source"] == "bundled"
    assert "not reachable" in found["map"]["reason"]
    assert found["env"] is None


@pytest.mark.slow
def test_the_user_asks_for_the_bundled_map(served_map):
    found = report(LITELLM_MODEL_COST_MAP_URL=served_map, LLM_API_CLIENT_LOCAL_PRICES="1")
    assert found["map"] == {"source": "bundled", "reason": "LLM_API_CLIENT_LOCAL_PRICES is set"}


def test_the_tracker_says_which_map_prices_it():
    assert APIUsageTracker().details["price_map"]["source"] == "bundled"  # conftest's choice


def test_answers_of_unpriced_models_are_counted_not_called_free():
    model = "openai/a-model-no-price-map-knows"
    with APIClient(None, None, processes=0, completion=FakeCompletion()) as client:
        client.make_requests([chat("a", model=model), chat("b"), chat("c", model=model)])
    tracker = client.tracker
    assert tracker.num_unpriced == 2
    assert tracker.details["unpriced_models"] == [model]
    assert tracker.by_model[model].unpriced == 2
    assert f"2 responses from models without a price ({model})" in str(tracker)
