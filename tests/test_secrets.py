"""A credential in a URL's user-info (``http://user:KEY@host/v1``) is kept nowhere.

The sentinel goes through the whole client against the simulator: an answered request, one the
provider refuses with 401 and one whose connection is refused. Everything the client stores, logs
or shows afterwards is searched for it.
"""

from __future__ import annotations

import json
import logging

import pytest

from llm_api_client import APIClient
from llm_api_client._redact import redact_request, redact_text
from llm_api_client.simulator import Simulator

SENTINEL_KEY = "sk-sentinel-userinfo-0123456789"


def with_user_info(url: str) -> str:
    return url.replace("http://", f"http://team:{SENTINEL_KEY}@", 1)


def request(api_base: str, text: str) -> dict[str, object]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "api_base": api_base,
        "api_key": "sk-placeholder",
        "max_tokens": 8,
        "timeout": 5,
    }


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_user_info_in_api_base_appears_nowhere(
    processes: int, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with Simulator() as sim, APIClient(processes=processes) as client:
        requests = [
            request(with_user_info(sim.base_url), "hello"),
            request(with_user_info(sim.base_url), "x #fail=401"),
            request(with_user_info("http://127.0.0.1:9/v1"), "refused"),
        ]
        responses = client.make_requests(requests)
        places = {
            "history": json.dumps(client.history, default=str),
            "errors": " ".join(f"{e!s} {e!r} {vars(e)}" for e in client.last_errors.values()),
            "tracker": json.dumps(client.tracker.to_dict()) + str(client.tracker),
            "details": json.dumps(client.details, default=str),
            "client": repr(client),
            "logs": caplog.text,
            "output": "".join(capsys.readouterr()),
        }

    assert responses[0] is not None and sorted(client.last_errors) == [1, 2]
    assert "http://team:" not in places["history"]  # the URL is kept, without the user-info
    assert "[REDACTED]@127.0.0.1" in places["history"]
    for place, text in places.items():
        assert SENTINEL_KEY not in text, place


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("http://user:pw-123@host/v1", "http://[REDACTED]@host/v1"),
        ("HTTPS://token-only@host", "HTTPS://[REDACTED]@host"),
        ("see https://u:p@ss@h.example:8/x?a=b@c", "see https://[REDACTED]@h.example:8/x?a=b@c"),
        (
            "error at socks5://me:pw@proxy:1080, retrying",
            "error at socks5://[REDACTED]@proxy:1080, retrying",
        ),
        ("http://host/v1?email=a@b.example", "http://host/v1?email=a@b.example"),
        ("write to someone@example.com", "write to someone@example.com"),
    ],
)
def test_user_info_is_redacted_from_text(text: str, redacted: str) -> None:
    assert redact_text(text) == redacted


def test_every_url_parameter_of_a_request_loses_its_user_info() -> None:
    raw = {
        "api_base": f"http://a:{SENTINEL_KEY}@one/v1",
        "base_url": f"https://{SENTINEL_KEY}@two/v1",
        "azure_endpoint": f"https://b:{SENTINEL_KEY}@three",
        "messages": [{"role": "user", "content": "kept as is"}],
        "user": "someone@example.com",
    }

    clean = redact_request(raw)

    assert SENTINEL_KEY not in json.dumps(clean)
    assert clean["base_url"] == "https://[REDACTED]@two/v1"
    assert clean["messages"] is raw["messages"] and clean["user"] == raw["user"]
