"""The simulator as the official ``openai`` client and litellm see it: chat, streams, embeddings.

Streams are checked three ways: their events over raw HTTP (OpenAI's shapes), their schedule with
an injected sleep (exact), and their timing as the openai client receives them (real time,
ratio-based and generous, since the machine may be loaded).
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import struct
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_api_client import _offline
from llm_api_client.errors import ConfigurationError
from llm_api_client.simulator import Simulator, SimulatorConfig, embedding_for
from llm_api_client.simulator.background import config_from_json, config_to_json
from llm_api_client.simulator.streaming import split
from llm_api_client.simulator.tokens import count_text
from tests.test_simulator import FakeClock, chat, request, wait_until

# Long enough that its echo has more characters than the answer has tokens (16): every token
# of the stream then carries text.
PROMPT = "Tell me, in a few words, what a token bucket is for."
ECHO = "echo: " + PROMPT
EMBEDDING_MODEL = "text-embedding-3-small"


def openai_client(sim: Simulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key="sk-placeholder", max_retries=0)


def messages(text: str = PROMPT) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sse_events(sim: Simulator, payload: dict[str, Any]) -> list[Any]:
    """POST a streamed chat completion; the decoded ``data:`` events, ``[DONE]`` as a string."""
    assert sim.port is not None
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        body = json.dumps({"model": "gpt-4o-mini", "stream": True, **payload})
        connection.request("POST", "/v1/chat/completions", body)
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        text = response.read().decode()
    finally:
        connection.close()
    assert text.endswith("\n\n")
    datas = [event.removeprefix("data: ") for event in text.split("\n\n") if event]
    return [data if data == "[DONE]" else json.loads(data) for data in datas]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


# ---- chat and streamed chat with the openai client -----------------------------------------


def test_the_openai_client_gets_a_chat_completion(sim: Simulator) -> None:
    with openai_client(sim) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages())
    assert completion.choices[0].message.content == ECHO
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (22, 16)


def test_the_openai_client_streams_the_plain_answer_with_usage_last(sim: Simulator) -> None:
    with openai_client(sim) as client:
        plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages())
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages(),
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    *answer, last = chunks
    assert answer[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in answer[1:]]
    assert "".join(content) == ECHO == plain.choices[0].message.content
    assert len(content) == 16 and all(content)  # one chunk per output token
    assert [c.choices[0].finish_reason for c in answer] == [None] * 16 + ["stop"]
    assert all(c.usage is None for c in answer)
    assert last.choices == [] and last.usage == plain.usage
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].object == "chat.completion.chunk"


def test_without_include_usage_no_chunk_carries_usage(sim: Simulator) -> None:
    events = sse_events(sim, {"messages": messages()})
    assert events[-1] == "[DONE]"
    assert all("usage" not in event for event in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert sim.stats()["endpoints"]["chat_stream"]["answered"] == 1


def test_a_stream_cut_by_max_tokens_has_that_many_chunks_and_finishes_on_length(
    sim: Simulator,
) -> None:
    events = sse_events(
        sim,
        {"messages": messages(), "max_tokens": 5, "stream_options": {"include_usage": True}},
    )
    role, *content, usage, done = events
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert len(content) == 5 and "".join(c["choices"][0]["delta"]["content"] for c in content)
    assert [c["choices"][0]["finish_reason"] for c in content] == [None] * 4 + ["length"]
    assert (usage["choices"], usage["usage"]["completion_tokens"], done) == ([], 5, "[DONE]")
    assert all(event["usage"] is None for event in [role, *content])


def test_a_stream_of_n_choices_sends_each_choice_its_own_chunks(sim: Simulator) -> None:
    events = sse_events(
        sim, {"messages": messages(), "n": 2, "stream_options": {"include_usage": True}}
    )
    *chunks, usage, _done = events
    assert all(len(c["choices"]) == 1 for c in chunks)
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0]["delta"]["role"] == "assistant"
        assert "".join(m["delta"]["content"] for m in mine) == ECHO
        assert mine[-1]["finish_reason"] == "stop"
    assert usage["usage"]["completion_tokens"] == 2 * 16


def test_a_short_echo_still_streams_first_and_last_token_with_text(sim: Simulator) -> None:
    events = sse_events(sim, {"messages": messages("hi")})  # "echo: hi": 8 characters, 16 tokens
    content = [e["choices"][0]["delta"]["content"] for e in events[1:-1]]
    assert "".join(content) == "echo: hi" and all(content) and len(content) == 8


@pytest.mark.parametrize(("length", "pieces"), [(0, 1), (0, 3), (1, 1), (1, 4), (8, 16), (50, 7)])
def test_split_keeps_the_text_and_the_count(length: int, pieces: int) -> None:
    text = "abcdefghij" * 5
    assert len(split(text[:length], pieces)) == pieces
    assert "".join(split(text[:length], pieces)) == text[:length]


@given(st.text(max_size=300), st.integers(min_value=1, max_value=200))
def test_split_pieces_are_even_and_the_ends_carry_text(content: str, pieces: int) -> None:
    parts = split(content, pieces)
    assert len(parts) == pieces and "".join(parts) == content
    sizes = {len(p) for p in parts}
    assert max(sizes) - min(sizes) <= 1
    if content:
        assert parts[0]
    if len(content) >= 2 or (content and pieces == 1):
        assert parts[-1]


# ---- stream timing -------------------------------------------------------------------------


def test_a_stream_waits_the_latency_then_one_token_delay_per_token() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    config = {"latency_ms": 100, "stream_token_delay_ms": 25, "completion_tokens": 5}
    with Simulator(sleep=record, **config) as sim:
        sse_events(sim, {"messages": messages()})
        assert waits == [0.1] + [0.025] * 4
        waits.clear()
        sse_events(sim, {"messages": messages(), "max_tokens": 3})
        assert waits == [0.1, 0.025, 0.025]
        waits.clear()
        assert chat(sim, PROMPT).status == 200  # a plain answer waits only its latency
        assert waits == [0.1]


def test_the_openai_client_sees_the_configured_first_token_and_token_delays() -> None:
    latency, delay, tokens = 0.15, 0.04, 16
    with (
        Simulator(latency_ms=latency * 1000, stream_token_delay_ms=delay * 1000) as sim,
        openai_client(sim) as client,
    ):
        list(client.chat.completions.create(model="m", messages=messages(), stream=True))  # warm
        start = time.monotonic()
        arrivals = [
            time.monotonic() - start
            for chunk in client.chat.completions.create(model="m", messages=messages(), stream=True)
            if chunk.choices and chunk.choices[0].delta.content
        ]
    generation = (tokens - 1) * delay
    assert len(arrivals) == tokens
    # The server cannot send earlier than its schedule, so these bounds are exact...
    assert arrivals[0] >= latency - 0.005
    assert arrivals[-1] >= latency + generation - 0.005
    # ...while a loaded client only receives later: generous bounds above.
    assert arrivals[0] < latency + 3.0
    assert (arrivals[-1] - arrivals[0]) / generation < 3.0


# ---- embeddings ----------------------------------------------------------------------------


def test_the_openai_client_gets_the_vectors_embedding_for_computes(sim: Simulator) -> None:
    texts = ["hello", "a token bucket refills continuously"]
    with openai_client(sim) as client:
        default = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)  # base64 inside
        floats = client.embeddings.create(
            model=EMBEDDING_MODEL, input=texts, encoding_format="float"
        )
        short = client.embeddings.create(model=EMBEDDING_MODEL, input="hello", dimensions=64)
    for response in (default, floats):
        assert [d.index for d in response.data] == [0, 1]
        assert [d.embedding for d in response.data] == [embedding_for(t) for t in texts]
        expected_tokens = sum(count_text("cl100k_base", t) for t in texts)
        assert response.usage.prompt_tokens == response.usage.total_tokens == expected_tokens
        assert response.model == EMBEDDING_MODEL
    assert short.data[0].embedding == embedding_for("hello", 64)
    assert len(embedding_for("hello")) == 1536


def test_base64_carries_the_float_vector_as_little_endian_float32(sim: Simulator) -> None:
    payload = {"model": EMBEDDING_MODEL, "input": "hello", "encoding_format": "base64"}
    encoded = request(sim, "POST", "/v1/embeddings", payload).body["data"][0]["embedding"]
    raw = base64.b64decode(encoded)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == embedding_for("hello")


def test_token_arrays_are_embedded_and_counted_by_length(sim: Simulator) -> None:
    payload = {"model": EMBEDDING_MODEL, "input": [[1, 2, 3], [4, 5]], "dimensions": 8}
    body = request(sim, "POST", "/v1/embeddings", payload).body
    assert [d["embedding"] for d in body["data"]] == [
        embedding_for([1, 2, 3], 8),
        embedding_for([4, 5], 8),
    ]
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    one = request(sim, "POST", "/v1/embeddings", {"model": "m", "input": [7, 8]}).body
    assert one["usage"]["prompt_tokens"] == 2 and len(one["data"]) == 1


def test_embedding_for_is_a_deterministic_unit_float32_vector() -> None:
    vector = embedding_for("same text", 256)
    assert vector == embedding_for("same text", 256)
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-6)
    assert list(struct.unpack("<256f", struct.pack("<256f", *vector))) == vector  # float32
    assert embedding_for("other text", 256) != vector
    assert embedding_for("[1, 2]", 8) != embedding_for([1, 2], 8)
    with pytest.raises(ValueError):
        embedding_for("x", 0)


def test_a_shorter_vector_is_the_start_of_the_full_one_rescaled() -> None:
    full, short = embedding_for("matryoshka"), embedding_for("matryoshka", 32)
    norm = math.sqrt(math.fsum(v * v for v in full[:32]))
    assert short == pytest.approx([v / norm for v in full[:32]], rel=1e-6)


def test_embedding_dimensions_sets_the_full_length() -> None:
    with Simulator(embedding_dimensions=16) as sim:
        body = request(sim, "POST", "/v1/embeddings", {"model": "m", "input": "x"}).body
        too_long = {"model": "m", "input": "x", "dimensions": 17}
        assert request(sim, "POST", "/v1/embeddings", too_long).status == 400
    assert body["data"][0]["embedding"] == embedding_for("x", 16)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ([], None),
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["ok", ""]}, "input"),
        ({"model": "m", "input": [1, "a"]}, "input"),
        ({"model": "m", "input": [[]]}, "input"),
        ({"model": "m", "input": [-1]}, "input"),
        ({"model": "m", "input": ["x"] * 2049}, "input"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "x", "dimensions": 1537}, "dimensions"),
        ({"model": "m", "input": "x", "dimensions": "8"}, "dimensions"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_malformed_embedding_requests_get_400_naming_the_parameter(
    sim: Simulator, payload: Any, param: str | None
) -> None:
    reply = request(sim, "POST", "/v1/embeddings", payload)
    assert reply.status == 400
    assert (reply.body["error"]["type"], reply.body["error"]["param"]) == (
        "invalid_request_error",
        param,
    )
    stats = sim.stats()
    assert stats["errors"] == {"invalid_request": 1}
    assert stats["endpoints"]["embeddings"]["received"] == 1


def test_an_input_over_8192_tokens_is_context_length_exceeded(sim: Simulator) -> None:
    reply = request(sim, "POST", "/v1/embeddings", {"model": "m", "input": [[1, 2], [1] * 8193]})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 8192 tokens" in reply.body["error"]["message"]
    assert "requested 8193 tokens" in reply.body["error"]["message"]
    assert request(sim, "POST", "/v1/embeddings", {"model": "m", "input": [1] * 8192}).status == 200


# ---- rate limits and faults apply to both ----------------------------------------------------


def test_streams_and_embeddings_share_the_rate_limits_and_get_429_before_answering() -> None:
    clock = FakeClock()
    with Simulator(rpm=60, tpm=1_000_000, clock=clock) as sim, openai_client(sim) as client:
        list(client.chat.completions.create(model="m", messages=messages(), stream=True))
        with pytest.raises(openai.RateLimitError) as embedding_refused:
            client.embeddings.create(model=EMBEDDING_MODEL, input="too soon")
        with pytest.raises(openai.RateLimitError) as stream_refused:
            client.chat.completions.create(model="m", messages=messages(), stream=True)
        clock.advance(1.0)
        client.embeddings.create(model=EMBEDDING_MODEL, input="a second later")
        stats = sim.stats()
    for refused in (embedding_refused.value, stream_refused.value):
        assert refused.response.headers["retry-after"] == "1"
        assert refused.code == "rate_limit_exceeded"
    assert stats["rejected_by_limit"] == {"requests": 2}
    assert stats["endpoints"]["embeddings"]["rejected_429"] == 1
    assert stats["endpoints"]["chat_stream"]["rejected_429"] == 1


def test_an_embedding_costs_its_input_tokens() -> None:
    clock = FakeClock()
    with Simulator(tpm=600, clock=clock) as sim:  # 10 tokens per second, a bucket of 10
        eight = {"model": EMBEDDING_MODEL, "input": [[1] * 5, [2] * 3]}
        first = request(sim, "POST", "/v1/embeddings", eight)
        assert first.status == 200 and first.headers["x-ratelimit-remaining-tokens"] == "2"
        second = request(sim, "POST", "/v1/embeddings", eight)
        assert second.status == 429 and second.body["error"]["type"] == "tokens"
        assert "Used 8, Requested 8" in second.body["error"]["message"]
        assert second.headers["retry-after-ms"] == "600"
        too_large = request(sim, "POST", "/v1/embeddings", {"model": "m", "input": [1] * 601})
        assert too_large.body["error"]["message"].startswith("Request too large for m")
        assert sim.stats()["tokens_charged"] == 8


def test_faults_come_before_a_stream_starts(sim: Simulator) -> None:
    with openai_client(sim) as client:
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="m", messages=messages("#fail=503"), stream=True)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="m", messages=messages("#drop"), stream=True)
        with pytest.raises(openai.InternalServerError):
            client.embeddings.create(model=EMBEDDING_MODEL, input=["fine", "#fail=500"])
    assert failed.value.status_code == 503
    stats = sim.stats()
    assert stats["errors"] == {"http_503": 1, "drop": 1, "http_500": 1}
    assert stats["answered"] == 0


def test_a_stream_the_client_abandons_is_counted_aborted_not_answered() -> None:
    with Simulator(stream_token_delay_ms=200) as sim:
        assert sim.port is not None
        connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
        body = json.dumps({"model": "m", "messages": messages(), "stream": True})
        connection.request("POST", "/v1/chat/completions", body)
        response = connection.getresponse()
        assert response.readline().startswith(b"data: ")
        connection.close()
        wait_until(lambda: sim.stats()["in_flight"] == 0)
        stats = sim.stats()
    assert stats["errors"] == {"stream_aborted": 1}
    assert stats["answered"] == 0 and stats["endpoints"]["chat_stream"]["errors"] == 1


# ---- litellm -------------------------------------------------------------------------------


def test_litellm_streaming_rebuilds_the_plain_answer_and_usage(sim: Simulator) -> None:
    litellm = _offline.litellm()
    call = {
        "model": "openai/gpt-4o-mini",
        "api_base": sim.base_url,
        "api_key": "sk-placeholder",
        "max_retries": 0,
        "messages": messages(),
    }
    plain = litellm.completion(**call)
    chunks = list(litellm.completion(**call, stream=True, stream_options={"include_usage": True}))
    rebuilt = litellm.stream_chunk_builder(chunks)
    assert rebuilt.choices[0].message.content == plain.choices[0].message.content == ECHO
    assert rebuilt.choices[0].finish_reason == "stop"
    usage = (rebuilt.usage.prompt_tokens, rebuilt.usage.completion_tokens)
    assert usage == (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (22, 16)


def test_litellm_embedding_returns_the_simulator_vectors_and_usage(sim: Simulator) -> None:
    litellm = _offline.litellm()
    response = litellm.embedding(
        model=f"openai/{EMBEDDING_MODEL}",
        api_base=sim.base_url,
        api_key="sk-placeholder",
        input=["hello", "world"],
        dimensions=32,
    )
    assert [d["embedding"] for d in response.data] == [
        embedding_for("hello", 32),
        embedding_for("world", 32),
    ]
    assert response.usage.prompt_tokens == 2
    assert sim.stats()["endpoints"]["embeddings"]["prompt_tokens"] == 2


# ---- stats, config, CLI --------------------------------------------------------------------


def test_stats_count_every_endpoint_in_the_totals_and_apart() -> None:
    with Simulator(clock=FakeClock()) as sim:
        chat(sim, PROMPT, max_tokens=4)
        sse_events(sim, {"messages": messages(), "max_tokens": 3})
        request(sim, "POST", "/v1/embeddings", {"model": "m", "input": [[1, 2, 3]]})
        request(sim, "POST", "/v1/embeddings", {"model": "m", "input": "hello", "user": "job-9"})
        stats = sim.stats()
    assert (stats["received"], stats["answered"]) == (4, 4)
    assert stats["prompt_tokens"] == 22 + 22 + 3 + 1
    assert stats["completion_tokens"] == 4 + 3
    assert stats["tokens_charged"] == (22 + 4) + (22 + 3) + 3 + 1
    assert stats["received_by_key"] == {PROMPT: 2, "[1, 2, 3]": 1, "job-9": 1}
    zero = dict.fromkeys(("rejected_429", "errors"), 0)
    assert stats["endpoints"] == {
        "chat": {"received": 1, "admitted": 1, "answered": 1, **zero, "tokens_charged": 26,
                 "prompt_tokens": 22, "completion_tokens": 4},
        "chat_stream": {"received": 1, "admitted": 1, "answered": 1, **zero,
                        "tokens_charged": 25, "prompt_tokens": 22, "completion_tokens": 3},
        "embeddings": {"received": 2, "admitted": 2, "answered": 2, **zero,
                       "tokens_charged": 4, "prompt_tokens": 4, "completion_tokens": 0},
    }  # fmt: skip


def test_the_new_settings_cross_to_a_simulator_process() -> None:
    config = SimulatorConfig(stream_token_delay_ms=7.5, embedding_dimensions=12)
    assert config_from_json(config_to_json(config)) == config
    with Simulator(process=True, embedding_dimensions=12) as sim:
        body = request(sim, "POST", "/v1/embeddings", {"model": "m", "input": "p"}).body
    assert body["data"][0]["embedding"] == embedding_for("p", 12)


def test_a_sleep_cannot_be_injected_into_another_process() -> None:
    async def sleep(seconds: float) -> None:
        return None

    with pytest.raises(ConfigurationError, match="thread mode"):
        Simulator(process=True, sleep=sleep)


def test_the_simulate_command_takes_the_stream_and_embedding_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from llm_api_client.cli.main import build_parser, main
    from llm_api_client.cli.simulate import config_from_args

    argv = ["simulate", "--stream-token-delay-ms", "12.5", "--embedding-dimensions", "256"]
    config = config_from_args(build_parser().parse_args(argv))
    assert (config.stream_token_delay_ms, config.embedding_dimensions) == (12.5, 256)
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--port", "0", "--stream-token-delay-ms", "-1"])
    assert exited.value.code == 2
    assert "--stream-token-delay-ms" in capsys.readouterr().err
