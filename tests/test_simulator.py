"""The simulator over loopback HTTP: OpenAI's shapes, windowed limits, faults, stats, the CLI.

Plain ``http.client`` keeps these fast; litellm appears once, for the round trip. Time-dependent
cases inject a fake clock into the (thread-mode) simulator instead of sleeping.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from llm_api_client.simulator import Simulator, SimulatorConfig

RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def request(
    sim: Simulator, method: str, path: str, payload: Any = None, timeout: float = 5.0
) -> Reply:
    assert sim.port is not None
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=timeout)
    try:
        body = payload if isinstance(payload, bytes | None) else json.dumps(payload).encode()
        connection.request(method, path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()
    return Reply(response.status, headers, json.loads(raw) if raw else None)


def chat(sim: Simulator, text: str = "hello", timeout: float = 5.0, **fields: Any) -> Reply:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **fields}
    return request(sim, "POST", "/v1/chat/completions", payload, timeout)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll for an asynchronous effect (a disconnect reaching the server), failing after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


# ---- OpenAI's shapes ----------------------------------------------------------------------


def test_a_chat_completion_has_openai_shape(sim: Simulator) -> None:
    reply = chat(sim, "hello")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-request-id"]
    body = reply.body
    assert body["id"].startswith("chatcmpl-")
    assert (body["object"], body["model"]) == ("chat.completion", "gpt-4o-mini")
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "echo: hello"
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": 16,
        "total_tokens": 24,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@pytest.mark.parametrize(
    ("fields", "per_choice", "finish_reason"),
    [
        ({}, 16, "stop"),
        ({"max_tokens": 5}, 5, "length"),
        ({"max_completion_tokens": 3}, 3, "length"),
        ({"max_tokens": 100}, 16, "stop"),
        ({"n": 3}, 16, "stop"),
        ({"n": 2, "max_tokens": 4}, 4, "length"),
    ],
)
def test_answer_length_follows_max_tokens_and_n(
    sim: Simulator, fields: dict[str, Any], per_choice: int, finish_reason: str
) -> None:
    body = chat(sim, **fields).body
    n = fields.get("n", 1)
    assert [c["index"] for c in body["choices"]] == list(range(n))
    assert {c["finish_reason"] for c in body["choices"]} == {finish_reason}
    assert body["usage"]["completion_tokens"] == n * per_choice


def test_the_answer_echoes_the_last_user_message_up_to_200_chars(sim: Simulator) -> None:
    text = "abc" * 100
    assert chat(sim, text).body["choices"][0]["message"]["content"] == "echo: " + text[:200]


def test_models_are_listed_like_openai(sim: Simulator) -> None:
    reply = request(sim, "GET", "/v1/models")
    assert reply.status == 200 and reply.body["object"] == "list"
    assert [m["id"] for m in reply.body["data"]] == list(SimulatorConfig().models)
    assert {m["object"] for m in reply.body["data"]} == {"model"}
    assert request(sim, "GET", "/v1/models/any-model").body["id"] == "any-model"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"{not json", None),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user"}], "n": 0}, "n"),
    ],
)
def test_malformed_requests_get_400_invalid_request_error(
    sim: Simulator, payload: Any, param: str | None
) -> None:
    reply = request(sim, "POST", "/v1/chat/completions", payload)
    assert reply.status == 400
    assert reply.body["error"]["type"] == "invalid_request_error"
    assert reply.body["error"]["param"] == param
    assert sim.stats()["errors"] == {"invalid_request": 1}


# ---- rate limits --------------------------------------------------------------------------


def test_rpm_60_admits_one_of_a_burst_and_429s_the_rest_with_openai_headers() -> None:
    clock = FakeClock()
    with Simulator(rpm=60, tpm=1_000_000, clock=clock) as sim:
        replies = [chat(sim, f"burst {i}") for i in range(5)]
        assert [r.status for r in replies] == [200, 429, 429, 429, 429]
        assert all(h in replies[0].headers for h in RATE_LIMIT_HEADERS)
        rejected = replies[1]
        assert rejected.body == {
            "error": {
                "message": rejected.body["error"]["message"],
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        assert rejected.body["error"]["message"].startswith("Rate limit reached for gpt-4o-mini")
        assert "requests per min (RPM): Limit 60" in rejected.body["error"]["message"]
        headers = rejected.headers
        assert (headers["retry-after"], headers["retry-after-ms"]) == ("1", "1000")
        assert headers["x-ratelimit-limit-requests"] == "60"
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-reset-requests"] == "1s"
        assert headers["x-ratelimit-limit-tokens"] == "1000000"
        assert all(h in headers for h in RATE_LIMIT_HEADERS)
        clock.advance(0.4)
        assert chat(sim).headers["retry-after-ms"] == "600"
        clock.advance(0.6)
        assert chat(sim, "a second later").status == 200
        assert chat(sim).status == 429


def test_600_rpm_admits_10_per_second_not_600_at_once() -> None:
    clock = FakeClock()
    with Simulator(rpm=600, clock=clock) as sim:
        for _ in range(3):
            assert sum(chat(sim).status == 200 for _ in range(15)) == 10
            clock.advance(1.0)
        stats = sim.stats()
    assert stats["admissions_per_second"] == [10, 10, 10]
    assert stats["max_admissions_per_second"] == 10
    assert (stats["admitted"], stats["rejected_429"]) == (30, 15)
    assert stats["rejected_by_limit"] == {"requests": 15}


def test_tokens_per_minute_charge_prompt_plus_max_output_at_admission() -> None:
    clock = FakeClock()
    with Simulator(rpm=10_000, tpm=6000, clock=clock) as sim:  # 100 tokens per second
        first = chat(sim, "hello", max_tokens=50)  # 8 prompt + 50 = 58
        assert first.status == 200
        assert first.headers["x-ratelimit-remaining-tokens"] == "42"
        second = chat(sim, "hello", max_tokens=50)
        assert second.status == 429 and second.body["error"]["type"] == "tokens"
        assert (
            "tokens per min (TPM): Limit 6000, Used 58, Requested 58"
            in (second.body["error"]["message"])
        )
        assert second.headers["retry-after-ms"] == "160"
        assert all(h in second.headers for h in RATE_LIMIT_HEADERS)
        clock.advance(0.16)
        assert chat(sim, "hello", max_tokens=50).status == 200
        assert sim.stats()["tokens_charged"] == 116


def test_without_max_tokens_the_default_output_is_charged() -> None:
    with Simulator(tpm=60_000_000, default_max_output_tokens=1000, clock=FakeClock()) as sim:
        chat(sim, "hello", n=2)
        assert sim.stats()["tokens_charged"] == 8 + 2 * 1000


def test_a_request_above_the_per_minute_limit_is_too_large_for_good() -> None:
    with Simulator(tpm=600, clock=FakeClock()) as sim:
        reply = chat(sim, "hello", max_tokens=1000)
    assert reply.status == 429
    assert reply.body["error"]["message"].startswith("Request too large for gpt-4o-mini")
    assert "retry-after" not in reply.headers


def test_without_limits_no_rate_limit_headers_are_sent(sim: Simulator) -> None:
    assert not any(h.startswith("x-ratelimit") for h in chat(sim).headers)


# ---- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "invalid_request_error"),
        (429, "requests"),
        (500, "server_error"),
        (503, "server_error"),
        (529, "server_error"),
    ],
)
def test_a_fail_marker_answers_that_status_with_an_openai_error_body(
    sim: Simulator, status: int, kind: str
) -> None:
    reply = chat(sim, f"please #fail={status}")
    assert reply.status == status
    assert reply.body["error"]["type"] == kind
    assert set(reply.body["error"]) == {"message", "type", "param", "code"}
    assert sim.stats()["errors"] == {f"http_{status}": 1}


def test_a_drop_marker_closes_the_connection_without_an_answer(sim: Simulator) -> None:
    with pytest.raises(http.client.RemoteDisconnected):
        chat(sim, "#drop")
    assert chat(sim, "still serving").status == 200
    assert sim.stats()["errors"] == {"drop": 1}


def test_a_hang_marker_never_answers_until_the_client_leaves(sim: Simulator) -> None:
    with pytest.raises(TimeoutError):
        chat(sim, "#hang", timeout=0.3)
    stats = sim.stats()
    assert stats["errors"] == {"hang": 1} and stats["answered"] == 0
    wait_until(lambda: sim.stats()["in_flight"] == 0)


def test_stopping_releases_hung_requests() -> None:
    outcome: list[BaseException] = []

    def hang(sim: Simulator) -> None:
        try:
            chat(sim, "#hang", timeout=30)
        except BaseException as exc:
            outcome.append(exc)

    with Simulator() as sim:
        client = threading.Thread(target=hang, args=(sim,))
        client.start()
        wait_until(lambda: sim.stats()["in_flight"] == 1)
    client.join(10)
    assert not client.is_alive()
    assert isinstance(outcome[0], http.client.RemoteDisconnected)


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"fail_rate": 1.0}, 500),
        ({"fail_rate": 1.0, "fail_status": 503}, 503),
        ({"drop_rate": 1.0}, "drop"),
        ({"hang_rate": 1.0}, "hang"),
    ],
)
def test_fault_rates_of_one_hit_every_request(fields: dict[str, Any], outcome: Any) -> None:
    with Simulator(**fields) as sim:
        if outcome == "drop":
            with pytest.raises(http.client.RemoteDisconnected):
                chat(sim)
        elif outcome == "hang":
            with pytest.raises(TimeoutError):
                chat(sim, timeout=0.2)
        else:
            assert chat(sim).status == outcome


def test_a_seed_replays_the_same_faults_after_reset() -> None:
    with Simulator(fail_rate=0.5, seed=42) as sim:
        first = [chat(sim, f"r{i}").status for i in range(40)]
        sim.reset()
        again = [chat(sim, f"r{i}").status for i in range(40)]
    assert first == again
    assert 5 < first.count(500) < 35 and set(first) == {200, 500}


def test_latency_is_a_non_blocking_sleep() -> None:
    latency = 0.2
    with Simulator(latency_ms=latency * 1000, jitter_ms=10) as sim:
        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda i: chat(sim, f"c{i}").status, range(16)))
        elapsed = time.monotonic() - start
        stats = sim.stats()
    assert statuses == [200] * 16
    assert elapsed >= latency - 0.011  # no answer comes before its latency
    assert stats["peak_in_flight"] > 1  # sleeping requests overlap: the loop is not blocked
    assert elapsed < 16 * latency / 2


@pytest.mark.parametrize(
    ("text", "fields", "detail"),
    [
        ("word " * 60, {}, "However, your messages resulted in 68 tokens."),
        ("hello", {"max_tokens": 100}, "However, you requested 108 tokens (8 in the messages, 100"),
    ],
)
def test_beyond_the_context_window_400_context_length_exceeded(
    text: str, fields: dict[str, int], detail: str
) -> None:
    with Simulator(context_window=50, rpm=60, clock=FakeClock()) as sim:
        reply = chat(sim, text, **fields)
        assert reply.status == 400
        error = reply.body["error"]
        assert (error["type"], error["param"], error["code"]) == (
            "invalid_request_error",
            "messages",
            "context_length_exceeded",
        )
        assert error["message"].startswith("This model's maximum context length is 50 tokens. ")
        assert detail in error["message"]
        assert chat(sim, "short").status == 200  # the 400 took nothing from the buckets
        assert sim.stats()["errors"] == {"context_length_exceeded": 1}


# ---- stats and reset ----------------------------------------------------------------------


def test_stats_show_what_the_provider_saw() -> None:
    with Simulator(rpm=60, clock=FakeClock()) as sim:
        chat(sim, "alpha", max_tokens=4)
        chat(sim, "beta")
        chat(sim, "gamma", user="job-7")
        stats = sim.stats()
    assert stats["received"] == 3
    assert (stats["admitted"], stats["answered"], stats["rejected_429"]) == (1, 1, 2)
    assert stats["tokens_charged"] == 8 + 4
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == (8, 4)
    assert stats["received_by_key"] == {"alpha": 1, "beta": 1, "job-7": 1}
    assert (stats["in_flight"], stats["peak_in_flight"]) == (0, 1)
    assert stats["admissions_per_second"] == [1]


def test_reset_clears_stats_and_refills_the_buckets() -> None:
    with Simulator(rpm=60, clock=FakeClock()) as sim:
        assert [chat(sim).status for _ in range(2)] == [200, 429]
        sim.reset()
        assert sim.stats()["received"] == 0
        assert chat(sim).status == 200
        stats = sim.stats()
    assert (stats["received"], stats["admitted"], stats["received_by_key"]) == (1, 1, {"hello": 1})


def test_a_simulator_in_its_own_process_serves_stats_and_reset() -> None:
    with Simulator(process=True, rpm=60) as sim:
        assert sim.pid != os.getpid()
        assert [chat(sim, "p").status for _ in range(2)] == [200, 429]
        assert sim.stats()["received_by_key"] == {"p": 2}
        sim.reset()
        assert sim.stats()["received"] == 0
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", sim.base_url)
    assert sim.port is None


def test_a_clock_cannot_be_injected_into_another_process() -> None:
    with pytest.raises(ValueError, match="thread mode"):
        Simulator(process=True, clock=FakeClock())


def test_start_and_stop_are_clean_and_repeatable() -> None:
    sim = Simulator(rpm=60)
    assert "stopped" in repr(sim)
    for _ in range(2):
        with sim:
            assert sim.base_url in repr(sim)
            assert chat(sim).status == 200
    sim.stop()  # idempotent


# ---- litellm and the CLI ------------------------------------------------------------------


def test_litellm_round_trip_returns_a_normal_model_response() -> None:
    from llm_api_client import _offline

    litellm = _offline.litellm()
    with Simulator(rpm=60, tpm=100_000, clock=FakeClock()) as sim:
        response = litellm.completion(
            model="openai/sim-model",
            api_base=sim.base_url,
            api_key="x",
            max_retries=0,
            messages=[{"role": "user", "content": "round trip"}],
            max_tokens=5,
        )
        assert isinstance(response, litellm.ModelResponse)
        assert response.choices[0].message.content == "echo: round trip"
        assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (9, 5)
        headers = response._hidden_params["additional_headers"]
        assert headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(litellm.RateLimitError) as caught:
            litellm.completion(
                model="openai/sim-model",
                api_base=sim.base_url,
                api_key="x",
                max_retries=0,
                messages=[{"role": "user", "content": "too soon"}],
            )
        assert caught.value.response.headers["retry-after"] == "1"
        assert sim.stats()["received_by_key"] == {"round trip": 1, "too soon": 1}


def test_the_simulate_subcommand_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "llm_api_client", "simulate", "--port", "0", "--rpm", "60"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=5)
        try:
            connection.request("GET", "/v1/models")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["object"] == "list"
        finally:
            connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    clock = FakeClock()
    with Simulator(rpm=20, clock=clock) as sim:  # one request per 3 s (bucket of 1/3)
        chat(sim)
        clock.advance(0.5)
        headers = chat(sim).headers
    assert headers["retry-after"] == str(math.ceil(2.5))
    assert headers["retry-after-ms"] == "2500"


def test_a_taken_port_fails_at_start() -> None:
    with Simulator() as first:
        second = Simulator(port=first.port)
        with pytest.raises(OSError):
            second.start()
        assert second.port is None and chat(first).status == 200


def test_the_cli_rejects_impossible_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from llm_api_client.cli.main import main

    with pytest.raises(SystemExit) as caught:  # out of range: refused while parsing
        main(["simulate", "--port", "0", "--fail-rate", "2"])
    assert caught.value.code == 2
    assert "argument --fail-rate" in capsys.readouterr().err
    # each in range, impossible together: refused by the simulator's settings
    assert main(["simulate", "--port", "0", "--fail-rate", "0.6", "--drop-rate", "0.6"]) == 2
    assert "fault rates sum above 1" in capsys.readouterr().err
