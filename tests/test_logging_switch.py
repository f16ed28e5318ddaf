"""litellm's success logging is skipped only while nothing listens to it."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from llm_api_client import APIClient, _offline
from llm_api_client.providers import logging_switch
from llm_api_client.providers.logging_switch import nobody_listens, unheard_logging_skipped
from llm_api_client.simulator import Simulator

litellm = _offline.litellm()
FLAG = logging_switch._FLAG


def quiet_litellm(**overrides: object) -> SimpleNamespace:
    """A stand-in for the litellm module with nothing registered, then ``overrides``."""
    attributes: dict[str, object] = {name: [] for name in logging_switch._LISTENERS}
    return SimpleNamespace(**{**attributes, "cache": None, **overrides})


def test_this_litellm_has_the_internal_call_flag():
    assert FLAG is not None, "litellm dropped is_internal_call: every call now logs"


@pytest.mark.parametrize(
    ("overrides", "listens"),
    [
        ({}, False),
        ({"success_callback": [print]}, True),
        ({"callbacks": [object()]}, True),
        ({"_async_success_callback": ["langfuse"]}, True),
        ({"failure_callback": [print]}, True),
        ({"service_callback": ["prometheus"]}, True),
        ({"cache": object()}, True),
    ],
    ids=["nothing", "success", "callbacks", "async", "failure", "service", "cache"],
)
def test_anything_registered_counts_as_a_listener(overrides, listens):
    assert nobody_listens(quiet_litellm(**overrides)) is not listens


def test_the_call_is_marked_internal_only_while_nobody_listens():
    assert FLAG is not None
    with unheard_logging_skipped(quiet_litellm()):
        assert FLAG.get() is True
    assert FLAG.get() is False
    with unheard_logging_skipped(quiet_litellm(success_callback=[print])):
        assert FLAG.get() is False


def test_the_mark_is_undone_when_the_call_raises():
    assert FLAG is not None
    with pytest.raises(ValueError), unheard_logging_skipped(quiet_litellm()):
        raise ValueError("the call failed")
    assert FLAG.get() is False


@pytest.mark.slow
def test_a_users_success_callback_still_sees_every_call(monkeypatch):
    seen: list[str] = []
    lock = threading.Lock()

    def callback(kwargs, response, start, end):
        with lock:
            seen.append(response.choices[0].message.content)

    monkeypatch.setattr(litellm, "success_callback", [callback])
    with Simulator() as sim, APIClient(processes=0, max_workers=4) as client:
        requests = [
            {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": f"logged {i}"}],
                "api_base": sim.base_url,
                "api_key": "sk-test",
            }
            for i in range(6)
        ]
        assert all(client.make_requests(requests))
        # litellm runs callbacks on a background pool; the client's warm-up call logs too.
        deadline = time.monotonic() + 10
        while len(seen) < 7 and time.monotonic() < deadline:
            time.sleep(0.05)

    ours = sorted(content for content in seen if content.startswith("echo: logged"))
    assert ours == sorted(f"echo: logged {i}" for i in range(6))
