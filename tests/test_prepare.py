"""prepare_request: validation table, cost, no mutation, and end-to-end against the simulator."""

from __future__ import annotations

import copy
import functools
import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from llm_api_client import APIClient, _offline
from llm_api_client._constants import DEFAULT_MAX_OUTPUT_TOKENS
from llm_api_client.errors import ContextWindowTooSmallError, InvalidRequestError
from llm_api_client.prepare.chat_tokens import count_request_tokens
from llm_api_client.prepare.request import (
    PreparedRequest,
    prepare_request,
    validate_request,
)
from llm_api_client.ratelimit.base import Cost
from llm_api_client.simulator.background import Simulator

litellm = _offline.litellm()

MESSAGES = [{"role": "user", "content": "Say hi."}]
SECRET = "sk-live-abcdefghijklmnop"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAX_INPUT_TOKENS_OVERRIDE", raising=False)
    monkeypatch.delenv("MAX_CONTEXT_TOKENS_FALLBACK", raising=False)


def request(**params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": MESSAGES, **params}


# --------------------------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (None, "must be a dict"),
        ("gpt-4o-mini", "must be a dict"),
        ([("model", "x")], "must be a dict"),
        ({"messages": MESSAGES}, "'model'"),
        (request(model=""), "'model'"),
        (request(model="   "), "'model'"),
        (request(model=4), "'model'"),
        ({"model": "gpt-4o-mini"}, "'messages'"),
        (request(messages=[]), "'messages'"),
        (request(messages="hi"), "'messages'"),
        (request(messages={"role": "user"}), "'messages'"),
        (request(messages=["hi"]), "messages[0]"),
        (request(messages=[{"content": "no role"}]), "messages[0]"),
        (request(messages=[*MESSAGES, {"role": 3, "content": "x"}]), "messages[1]"),
        (request(max_tokens=0), "'max_tokens' must be a positive integer"),
        (request(max_tokens=-5), "'max_tokens'"),
        (request(max_tokens=10.0), "'max_tokens'"),
        (request(max_tokens="10"), "'max_tokens'"),
        (request(max_tokens=True), "'max_tokens'"),
        (request(max_completion_tokens=0), "'max_completion_tokens'"),
        (request(n=0), "'n' must be a positive integer"),
        (request(n=1.5), "'n'"),
        (request(temperature="hot"), "'temperature' must be a finite number"),
        (request(temperature=math.nan), "'temperature'"),
        (request(temperature=math.inf), "'temperature'"),
        (request(temperature=True), "'temperature'"),
        (request(top_p=[1]), "'top_p'"),
        (request(seed=1.5), "'seed'"),
        (request(stream="yes"), "'stream'"),
        (request(stream_options=["usage"]), "'stream_options' must be a dict"),
        ({"model": "text-embedding-3-small", "input": []}, "'input' must be a non-empty string"),
        ({"model": "text-embedding-3-small", "input": ""}, "'input' must be non-empty strings"),
        ({"model": "text-embedding-3-small", "input": ["a", 1]}, "'input' must be non-empty"),
        ({"model": "text-embedding-3-small", "input": ["a"] * 2049}, "at most 2048 inputs"),
        ({"model": "text-embedding-3-small", "input": None}, "'input' must be"),
        ({"model": "text-embedding-3-small", "input": "a", "stream": True}, "cannot be streamed"),
        ({"model": "text-embedding-3-small", "input": "a", "dimensions": 0}, "'dimensions'"),
        ({"model": "text-embedding-3-small", "input": "a", "encoding_format": "hex"}, "'float'"),
        (request(stop=5), "'stop'"),
        (request(stop=["a", 1]), "'stop'"),
        (request(tools={"type": "function"}), "'tools'"),
        (request(tools=["f"]), "'tools'"),
        (request(tool_choice=1), "'tool_choice'"),
        (request(extra_headers=["x"]), "'extra_headers'"),
        (request(timeout=0), "'timeout'"),
        (request(timeout=-1.0), "'timeout'"),
        (request(timeout="30"), "'timeout'"),
        (request(api_key=12345), "'api_key' must be a string"),
        (request(metadata={"when": object()}), "'metadata' cannot be sent as JSON"),
        (request(metadata={"ids": {1, 2}}), "'metadata' cannot be sent as JSON"),
        (request(messages=[{"role": "user", "content": b"bytes"}]), "messages[0]['content']"),
        (
            request(messages=[{"role": "user", "content": [{"type": "text", "text": math.nan}]}]),
            "messages[0]['content'] cannot be sent as JSON",
        ),
        (request(logit_bias={"1": math.inf}), "'logit_bias' cannot be sent as JSON"),
        (request(some_provider_knob=math.nan), "'some_provider_knob' must be a finite number"),
    ],
)
def test_invalid_requests_are_rejected_with_their_index(bad: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        prepare_request(bad, index=41)
    assert caught.value.index == 41
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("request 41: ")


@pytest.mark.parametrize(
    "good",
    [
        request(),
        request(max_tokens=1, n=2, temperature=0, top_p=1, seed=-3, stop="\n"),
        request(temperature=0.7, presence_penalty=-1.5, frequency_penalty=2),
        request(max_tokens=None, temperature=None, tools=None),
        request(stop=["a", "b"], logprobs=True, top_logprobs=0, stream=False),
        request(timeout=2.5, api_key=SECRET, api_base="http://127.0.0.1:9/v1"),
        request(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="auto"),
        request(metadata={"a": [1, {"b": None}]}, extra_body={"x": 1}),
        request(top_k=5, safety_settings=[{"category": "x"}]),  # provider-specific
        request(messages=[{"role": "user", "content": None, "name": "bob"}]),
        request(response_format={"type": "json_object"}),
        request(mock_response=ValueError("boom")),  # litellm accepts Python objects here
    ],
)
def test_valid_requests_pass_validation(good: dict[str, Any]) -> None:
    assert validate_request(good) is good


def test_timeout_object_is_accepted() -> None:
    import httpx

    assert validate_request(request(timeout=httpx.Timeout(5.0)))


def test_errors_never_contain_a_credential() -> None:
    bad = request(api_key=SECRET, metadata={"key": SECRET, "bad": object()})
    with pytest.raises(InvalidRequestError) as caught:
        prepare_request(bad, index=0)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    with pytest.raises(InvalidRequestError) as caught:
        prepare_request(request(api_key=[SECRET]), index=0)
    assert SECRET not in str(caught.value)


# --------------------------------------------------------------------------------------------
# What comes out.


def test_prepared_request_carries_index_model_and_cost() -> None:
    raw = request(max_tokens=100, n=2, reasoning_effort="low")
    prepared = prepare_request(raw, index=7)
    assert isinstance(prepared, PreparedRequest)
    assert prepared.index == 7 and prepared.model == "gpt-4o-mini"
    assert "reasoning_effort" not in prepared.request
    prompt = count_request_tokens(prepared.request)
    assert prepared.cost == Cost(input_tokens=prompt, output_tokens=200)
    with pytest.raises(AttributeError):
        prepared.index = 8  # type: ignore[misc]


def test_the_repr_of_a_prepared_request_holds_no_credential() -> None:
    raw = request(
        api_key=SECRET,
        api_base=f"https://user:{SECRET}@proxy.example/v1",
        extra_headers={"Authorization": f"Bearer {SECRET}", "X-Trace": "t-1"},
    )

    text = repr(prepare_request(raw, index=3))

    assert SECRET not in text
    assert "https://[REDACTED]@proxy.example/v1" in text and "t-1" in text


def test_default_output_reservation() -> None:
    assert prepare_request(request(), index=0).cost.output_tokens == DEFAULT_MAX_OUTPUT_TOKENS


def test_sanitize_false_keeps_everything_but_still_validates_and_counts() -> None:
    raw = request(reasoning_effort="low")
    prepared = prepare_request(raw, index=0, sanitize=False)
    assert prepared.request == raw and prepared.request is not raw
    assert prepared.cost.input_tokens == count_request_tokens(raw)
    with pytest.raises(InvalidRequestError):
        prepare_request(request(n=0), index=0, sanitize=False)


def test_never_mutates_the_callers_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_INPUT_TOKENS_OVERRIDE", "40")
    raw = request(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "old " * 50},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "new " * 100}]},
        ],
        reasoning_effort="low",
        metadata={"tags": ["a"]},
    )
    before = copy.deepcopy(raw)
    prepared = prepare_request(raw, index=0)
    assert raw == before
    assert prepared.cost.input_tokens <= 40


def test_context_window_error_carries_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CONTEXT_TOKENS_FALLBACK", "50")
    with pytest.raises(ContextWindowTooSmallError) as caught:
        prepare_request(request(model="sim-unknown", max_tokens=100), index=3)
    assert caught.value.index == 3


@pytest.mark.parametrize("bad", ["not a dict", request(n=0)], ids=["not-a-dict", "n=0"])
def test_a_rejected_request_error_carries_its_index(bad: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        prepare_request(bad, index=11)
    assert caught.value.index == 11
    assert prepare_request(request(), index=12).index == 12


# --------------------------------------------------------------------------------------------
# End to end through litellm.completion, against the simulator and a recording endpoint.


def test_reasoning_effort_on_gpt_4o_mini_is_dropped_and_the_request_succeeds() -> None:
    with Simulator() as sim:
        raw = request(model="openai/gpt-4o-mini", api_base=sim.base_url, api_key="x", max_tokens=8)
        raw["reasoning_effort"] = "low"
        with pytest.raises(litellm.UnsupportedParamsError):  # what the seed ran into
            litellm.completion(**raw, max_retries=0)
        prepared = prepare_request(raw, index=0)
        response = litellm.completion(**prepared.request, max_retries=0)
        assert response.choices[0].message.content
        assert sim.stats()["admitted"] == 1


def test_200k_token_conversation_is_truncated_and_answered() -> None:
    text = " ".join(["alpha", "beta", "gamma", "delta", "epsilon"] * 500)
    messages = [{"role": "system", "content": "Summarise."}]
    messages += [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {text}"}
        for i in range(80)
    ]
    messages.append({"role": "user", "content": "What was said?"})
    with Simulator() as sim:  # its window is 128k, like gpt-4o-mini's
        raw = {
            "model": "openai/gpt-4o-mini",
            "messages": messages,
            "api_base": sim.base_url,
            "api_key": "x",
            "max_tokens": 16,
        }
        assert count_request_tokens(raw) > 195_000
        prepared = prepare_request(raw, index=0)
        assert prepared.cost.input_tokens + 16 <= 128_000
        response = litellm.completion(**prepared.request, max_retries=0)
        assert response.choices[0].message.content
        assert sim.stats()["admitted"] == 1


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[dict[str, str], dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.seen.append((dict(self.headers), body))
        answer = {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_per_request_api_base_key_timeout_and_headers_reach_the_provider(recorder: str) -> None:
    raw = request(
        model="openai/gpt-4o-mini",
        api_base=recorder,
        api_key="sk-per-request-key-0001",
        timeout=7.5,
        extra_headers={"x-trace-id": "t-1"},
        metadata={"job": "nightly"},
        user="u-1",
    )
    prepared = prepare_request(raw, index=0)
    for key in ("api_base", "api_key", "timeout", "extra_headers", "metadata", "user"):
        assert prepared.request[key] == raw[key]
    litellm.completion(**prepared.request, max_retries=0)
    headers, body = _Recorder.seen[-1]
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["authorization"] == "Bearer sk-per-request-key-0001"
    assert lowered["x-trace-id"] == "t-1"
    assert body["user"] == "u-1" and body["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_a_streamed_request_is_answered_whole_and_timed(processes: int) -> None:
    # litellm answers stream=True with a chunk iterator, which neither pickles back from a
    # worker process nor can be stored: the worker reads it whole and returns one response.
    answer = functools.partial(litellm.completion, mock_response="A canned answer.")
    batch = [request(), request(stream=True), request(stream=False)]

    with APIClient(processes=processes, completion=answer) as client, client.stream(batch) as s:
        results = sorted(s, key=lambda result: result.index)

    assert [r.response.choices[0].message.content for r in results] == ["A canned answer."] * 3
    assert type(results[1].response) is litellm.ModelResponse
    assert [r.usage.time_to_first_token is not None for r in results if r.usage] == [
        False,
        True,
        False,
    ]
    assert client.tracker.stream_timings().calls == 1


@pytest.mark.parametrize(
    ("raw", "tokens"),
    [
        ("one two three", 3),
        (["one two three", "four"], 4),
        ([5, 6, 7], 3),
        ([[5, 6], [7]], 3),
    ],
)
def test_an_embedding_request_costs_its_input_tokens_and_no_output(raw: Any, tokens: int) -> None:
    prepared = prepare_request({"model": "text-embedding-3-small", "input": raw}, index=4)
    assert prepared.cost == Cost(input_tokens=tokens, output_tokens=0)
    assert prepared.request == {"model": "text-embedding-3-small", "input": raw}


def test_a_streamed_request_asks_for_its_usage_where_the_model_takes_stream_options() -> None:
    openai = prepare_request(request(stream=True), index=0).request
    assert openai["stream_options"] == {"include_usage": True}
    chosen = prepare_request(request(stream=True, stream_options={}), index=0).request
    assert chosen["stream_options"] == {}
    claude = {"model": "claude-3-5-haiku-20241022", "messages": MESSAGES, "stream": True}
    assert "stream_options" not in prepare_request(claude, index=0).request
