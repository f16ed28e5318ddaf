"""What 0.1.8 code reads from a client: ``history`` entries and ``details``, in 0.1.8's shapes.

0.1.8 (``api_client.py``) appends one entry per request of each ``make_requests`` call::

    {"request": <the request dict>, "response": response.model_dump() or None,
     "content": choices[0].message.content or None,
     "created_at": "%Y-%m-%d %H:%M:%S" of response.created, or None}

and ``details`` is ``max_requests_per_minute``, ``max_tokens_per_minute``, ``max_workers`` (an
int: the one given, else the request limit, else 20 per core) and the tracker's details. Here
``max_workers=None`` means "follow the latency", so ``details`` reports its ceiling instead.
One deliberate difference: credentials in a stored request are replaced, never kept.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from unittest.mock import patch

import pytest

from llm_api_client import APIClient
from llm_api_client._constants import MAX_THREADS_PER_PROCESS
from tests.fakes import FakeCompletion, chat

SEED_ENTRY_KEYS = {"request", "response", "content", "created_at"}
SEED_DETAIL_KEYS = {
    "max_requests_per_minute",
    "max_tokens_per_minute",
    "max_workers",
    "total_cost",
    "total_prompt_tokens",
    "total_completion_tokens",
    "num_api_calls",
    "mean_response_time",
    "response_times",
}
SECRET = "sk-history-sentinel-0123456789"


def test_history_entries_have_the_0_1_8_shape():
    requests = [chat("hello", temperature=0.5), chat("no #fail=400"), chat("key", api_key=SECRET)]
    with APIClient(processes=0, completion=FakeCompletion()) as client:
        responses = client.make_requests(requests)

    answered, failed, keyed = client.history
    assert all(set(entry) == SEED_ENTRY_KEYS for entry in client.history)
    assert answered["request"] == requests[0]
    assert answered["response"] == responses[0].model_dump()
    assert answered["response"]["choices"][0]["message"]["content"] == "echo: hello"
    assert answered["content"] == "echo: hello"
    created = datetime.fromtimestamp(responses[0].created).strftime("%Y-%m-%d %H:%M:%S")
    assert answered["created_at"] == created
    assert failed == {"request": requests[1], "response": None, "content": None, "created_at": None}
    assert keyed["content"] == "echo: key"
    assert SECRET not in json.dumps(keyed["request"])
    assert {k: v for k, v in keyed["request"].items() if k != "api_key"} == chat("key")


def test_history_grows_with_each_call_in_input_order():
    with APIClient(processes=0, completion=FakeCompletion()) as client:
        client.make_requests([chat("a"), chat("b")])
        client.make_requests_with_retries([chat("c")])

    assert [entry["content"] for entry in client.history] == ["echo: a", "echo: b", "echo: c"]


def test_details_has_the_seed_keys_and_is_json():
    with APIClient(600, 50_000, max_workers=12, processes=0, completion=FakeCompletion()) as client:
        client.make_requests([chat("a")])
        details = client.details

    assert set(details) >= SEED_DETAIL_KEYS
    assert details["max_requests_per_minute"] == 600
    assert details["max_tokens_per_minute"] == 50_000
    assert details["max_workers"] == 12
    assert details["num_api_calls"] == 1
    json.dumps(details)


@pytest.mark.parametrize(
    ("rpm", "processes", "ceiling"),
    [
        pytest.param(10_000, 0, MAX_THREADS_PER_PROCESS, id="threads"),
        pytest.param(10_000, 3, 3 * MAX_THREADS_PER_PROCESS, id="three-processes"),
        # default processes for a large batch: 60,000 RPM = 1,000/s -> 7, capped at 4 cores
        pytest.param(60_000, None, 4 * MAX_THREADS_PER_PROCESS, id="default-processes"),
        pytest.param(6_000, None, MAX_THREADS_PER_PROCESS, id="one-process-serves"),
    ],
)
def test_details_reports_the_thread_ceiling_when_max_workers_follows_latency(
    monkeypatch, rpm, processes, ceiling
):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    with APIClient(rpm, None, processes=processes) as client:
        assert client.details["max_workers"] == ceiling


def test_a_patched_litellm_completion_sees_exactly_the_users_request(monkeypatch):
    # 0.1.8's own tests patch litellm.completion and assert one call per request: the
    # warm-up must not go through the patched function (made to run again here).
    import litellm

    from llm_api_client.providers import warmup

    monkeypatch.setattr(warmup, "_warmed", False)
    monkeypatch.setattr(warmup, "_types_built", False)

    answer = litellm.ModelResponse(
        choices=[{"message": {"role": "assistant", "content": "hi"}}],
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    )
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with (
        patch("litellm.completion", return_value=answer) as completion,
        APIClient(processes=0) as client,
    ):
        (response,) = client.make_requests([{**request, "api_key": "sk-test"}])
    assert response.choices[0].message.content == "hi"
    completion.assert_called_once()
    assert completion.call_args.kwargs["messages"] == request["messages"]


def test_remove_unsupported_params_drops_temperature_for_o_series():
    request = {"model": "openai/o3-mini", "messages": [], "temperature": 0.2, "max_tokens": 9}
    assert APIClient(processes=0).remove_unsupported_params(request) == {
        "model": "openai/o3-mini",
        "messages": [],
        "max_tokens": 9,
    }
