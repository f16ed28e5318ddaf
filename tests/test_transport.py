"""Transports: the one way a request reaches a provider (litellm, or a function standing in)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_api_client import APIClient, _offline, errors
from llm_api_client.providers import FunctionTransport, LiteLLMTransport, Transport, warmup
from tests.fakes import chat, make_response

litellm = _offline.litellm()


class Recorder:
    """A completion function that answers and remembers the keyword arguments of each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return make_response(kwargs["model"], "fine")


def test_both_transports_follow_the_protocol() -> None:
    transports: list[Transport] = [LiteLLMTransport(), FunctionTransport(Recorder())]
    assert all(callable(t.setup) and callable(t.complete) for t in transports)


def test_a_call_retries_nothing_underneath_and_leaves_the_request_alone() -> None:
    recorder = Recorder()
    request = {**chat("hi"), "num_retries": 5, "max_retries": 9, "api_base": "http://x/v1"}
    before = dict(request)

    response = FunctionTransport(recorder).complete(request, timeout=12.5)

    assert response.choices[0].message.content == "fine"
    assert request == before
    [sent] = recorder.calls
    assert sent["max_retries"] == 0 and "num_retries" not in sent
    assert (sent["timeout"], sent["api_base"]) == (12.5, "http://x/v1")


def _rate_limited(**kwargs: Any) -> Any:
    response = httpx.Response(
        429,
        request=httpx.Request("POST", "http://fake/v1/chat/completions"),
        headers={"Retry-After": "3", "Set-Cookie": "session=1", "x-request-id": "req-9"},
    )
    raise litellm.RateLimitError("slow down", llm_provider="openai", model="m", response=response)


def test_a_functions_errors_become_ours() -> None:
    with pytest.raises(errors.RateLimitError) as caught:
        FunctionTransport(_rate_limited).complete(chat("hi"), timeout=5)

    error = caught.value
    assert (error.status_code, error.retry_after, error.request_id) == (429, 3.0, "req-9")
    assert error.model == "gpt-4o-mini"
    assert "set-cookie" not in error.headers
    assert isinstance(error.__cause__, litellm.RateLimitError)


def test_a_provider_faked_by_a_function_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def no_network(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    recorder = Recorder()
    with APIClient(None, None, processes=0, max_workers=4, completion=recorder) as client:
        responses = client.make_requests([chat(f"question {i}") for i in range(20)])

    assert all(r is not None and r.choices[0].message.content == "fine" for r in responses)
    assert len(recorder.calls) == 20
    assert client.tracker.num_api_calls == 20 and client.tracker.total_prompt_tokens == 200
    assert attempts == []


class FileRecorder:
    """A stand-in for ``litellm.completion`` that notes each call in a file (from any process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> Any:
        text = kwargs["messages"][-1]["content"]
        with self.lock, open(self.path, "a") as log:
            log.write(f"{os.getpid()} {kwargs.get('max_retries')} {text}\n")
        return make_response(kwargs["model"], f"echo: {text}")

    def calls(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_a_patched_litellm_completion_sees_exactly_the_calls_made(
    processes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a fresh process: the warm-up runs now, and must not call the patched function.
    monkeypatch.setattr(warmup, "_warmed", False)
    monkeypatch.setattr(warmup, "_types_built", False)
    fake = FileRecorder(tmp_path / "calls.txt")
    monkeypatch.setattr(litellm, "completion", fake)
    with APIClient(None, None, processes=processes, max_workers=4) as client:
        responses = client.make_requests([chat(f"question {i}") for i in range(12)])

    assert [r.choices[0].message.content for r in responses] == [
        f"echo: question {i}" for i in range(12)
    ]
    calls = fake.calls()
    assert sorted(line.split(" ", 1)[1] for line in calls) == sorted(
        f"0 question {i}" for i in range(12)
    )
    in_workers = {line.split(" ", 1)[0] for line in calls} != {str(os.getpid())}
    assert in_workers is (processes > 0)


def test_the_warm_up_leaves_the_calling_threads_event_loop_alone(monkeypatch):
    # Run on the main thread, litellm's service logging would make and set a loop there that
    # nobody closes: the caller's next asyncio.run drops it unclosed (a ResourceWarning).
    import asyncio

    monkeypatch.setattr(warmup, "_warmed", False)
    monkeypatch.setattr(warmup, "_types_built", False)
    before = asyncio.get_event_loop_policy()
    policy = asyncio.DefaultEventLoopPolicy()  # a main thread that never had a loop
    asyncio.set_event_loop_policy(policy)
    try:
        warmup.warm_litellm()
        assert policy._local._loop is None  # type: ignore[attr-defined]
    finally:
        asyncio.set_event_loop_policy(before)
