"""Streamed calls (``stream=True``): read whole in the worker, timed token by token.

The reading is checked with chunks and a clock of our own (exact times); the tracker's
aggregation against numpy; and the whole path against the simulator, whose configured time to
first token and delay per token the tracker must report (within 20%: the machine is loaded).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from llm_api_client import APIClient, _offline, errors
from llm_api_client.call.execute import execute
from llm_api_client.call.retry import RetryPolicy
from llm_api_client.providers.litellm_transport import FunctionTransport
from llm_api_client.providers.streaming import StreamTiming, read_stream, stream_timing
from llm_api_client.ratelimit.base import Cost
from llm_api_client.records import UsageRecord
from llm_api_client.simulator import Simulator
from llm_api_client.tracker import APIUsageTracker
from tests.test_call import FakeLimiter

litellm = _offline.litellm()

MESSAGES = [{"role": "user", "content": "Count to three."}]


def chunk(content: str | None = None, *, role: str | None = None, usage: Any = None) -> Any:
    delta: dict[str, Any] = {"content": content}
    if role:
        delta["role"] = role
    made = litellm.ModelResponseStream(
        id="chatcmpl-1", model="gpt-4o-mini", choices=[{"index": 0, "delta": delta}]
    )
    if usage is not None:
        made.usage = litellm.Usage(**usage)
    return made


class Ticking:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_read_stream_times_the_first_and_last_output_chunks_only() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    chunks = [chunk("", role="assistant"), chunk("one"), chunk(" two"), chunk(" three")]
    chunks.append(chunk(None, usage=usage))
    clock = Ticking(0.25)

    response = read_stream(iter(chunks), {"messages": MESSAGES}, 0.0, clock)

    assert type(response) is litellm.ModelResponse
    assert response.choices[0].message.content == "one two three"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 3)
    # The clock is read at each output chunk: 0.25, 0.5, 0.75 (the role and usage chunks carry
    # no output and are not timed).
    assert stream_timing(response) == StreamTiming(first_token=0.25, last_token=0.75)


def test_a_whole_answer_to_a_streamed_request_passes_through_untimed() -> None:
    whole = litellm.ModelResponse(choices=[{"message": {"content": "hi"}}])
    assert read_stream(whole, {}, 0.0, Ticking(1)) is whole
    assert stream_timing(whole) is None


def test_a_stream_without_a_chunk_is_a_connection_error() -> None:
    with pytest.raises(errors.APIConnectionError, match="without a chunk"):
        read_stream(iter([]), {"messages": MESSAGES}, 0.0, Ticking(1))


@pytest.mark.parametrize(
    ("timing", "tokens", "expected"),
    [
        (StreamTiming(0.5, 1.5), 11, 0.1),
        (StreamTiming(0.5, 1.5), 2, 1.0),
        (StreamTiming(0.5, 0.5), 1, None),  # one token: no interval
        (StreamTiming(0.5, 0.5), 5, None),  # all in one chunk: no rate to tell
        (StreamTiming(0.5, 1.5), 0, None),  # no usage reported
    ],
)
def test_time_per_output_token(timing: StreamTiming, tokens: int, expected: float | None) -> None:
    assert timing.per_token(tokens) == (pytest.approx(expected) if expected else None)


def execute_once(request: dict[str, Any], transport: FunctionTransport) -> Any:
    cost = Cost(input_tokens=10, output_tokens=10)
    policy = RetryPolicy(max_retries=0)
    return execute(
        request, index=3, cost=cost, limiter=FakeLimiter(), policy=policy, transport=transport
    )


def test_the_transport_reads_a_stream_and_the_record_carries_its_timing() -> None:
    completion = functools.partial(litellm.completion, mock_response="a b c d e")
    transport = FunctionTransport(completion, clock=Ticking(0.1))
    request = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}

    outcome = execute_once(request, transport)

    assert outcome.ok and outcome.response.choices[0].message.content == "a b c d e"
    timing = stream_timing(outcome.response)
    tokens = outcome.response.usage.completion_tokens
    assert timing is not None and tokens > 1
    record = outcome.record
    # started at 0.1, first output chunk read at 0.2
    assert record.time_to_first_token == timing.first_token == pytest.approx(0.1)
    assert record.time_per_output_token == pytest.approx(timing.per_token(tokens))
    assert record.output_tokens_per_second == pytest.approx(1 / timing.per_token(tokens))
    assert pickle.loads(pickle.dumps(outcome)).record == record  # crosses the process pipes


def test_an_unstreamed_record_has_no_timing() -> None:
    completion = functools.partial(litellm.completion, mock_response="a b c")
    request = {"model": "gpt-4o-mini", "messages": MESSAGES}
    outcome = execute_once(request, FunctionTransport(completion))
    record = outcome.record
    assert outcome.ok and record.time_to_first_token is None
    assert record.time_per_output_token is None and record.output_tokens_per_second is None


def streamed(model: str, first: float, per_token: float, tokens: int, i: int) -> UsageRecord:
    return UsageRecord(
        index=i,
        model=model,
        completion_tokens=tokens,
        time_to_first_token=first,
        time_per_output_token=per_token,
        output_tokens_per_second=1 / per_token,
    )


def test_the_tracker_reports_stream_timings_per_model_with_numpy_percentiles() -> None:
    np = pytest.importorskip("numpy")
    firsts = [0.1 + 0.013 * (i % 11) for i in range(60)]
    tracker = APIUsageTracker()
    tracker.add_many(
        streamed("a" if i % 3 else "b", first, 0.02 + 0.001 * i, 10, i)
        for i, first in enumerate(firsts)
    )
    tracker.add(UsageRecord(index=99, model="a", completion_tokens=3))  # not streamed

    everything = tracker.stream_timings()
    assert everything.calls == 60
    for p in (0, 50, 90, 99, 100):
        found = everything.time_to_first_token.percentile(p)
        assert found == pytest.approx(float(np.percentile(firsts, p)))
    only_b = [first for i, first in enumerate(firsts) if i % 3 == 0]
    assert tracker.stream_timings("b").time_to_first_token.mean == pytest.approx(np.mean(only_b))
    assert tracker.stream_timings("b").calls == 20
    assert tracker.stream_timings("unknown").calls == 0
    details = tracker.details["streaming"]
    assert details["calls"] == 60 and set(details["by_model"]) == {"a", "b"}
    rate = details["output_tokens_per_second"]["mean"]
    assert rate == pytest.approx(np.mean([1 / (0.02 + 0.001 * i) for i in range(60)]))
    assert "Streamed calls: 60, time to first token: mean" in str(tracker)


def test_stream_timings_reset_and_stay_out_of_unstreamed_reports() -> None:
    one = APIUsageTracker()
    one.add_many([streamed("a", 0.2, 0.05, 5, 0), streamed("a", 0.4, 0.05, 5, 1)])
    assert one.stream_timings("a").time_to_first_token.mean == pytest.approx(0.3)
    assert one.stream_timings().calls == 2 and one.details["streaming"]["calls"] == 2
    one.reset()
    assert one.stream_timings().calls == 0
    one.add(UsageRecord(index=0, model="a"))
    assert "streaming" not in one.details and "Streamed" not in str(one)


# The simulator's time to first token and delay per token; long, so that the client's own CPU
# time per call (tens of ms on a loaded machine) stays well inside the 20% asked.
FIRST_TOKEN_SECONDS, TOKEN_SECONDS, TOKENS = 1.5, 0.1, 10


@pytest.fixture(scope="module")
def slow_streams() -> Iterator[Simulator]:
    # Its own process: the client's threads do not slow the simulator's clock down.
    with Simulator(
        process=True,
        latency_ms=FIRST_TOKEN_SECONDS * 1000,
        stream_token_delay_ms=TOKEN_SECONDS * 1000,
        completion_tokens=TOKENS,
    ) as sim:
        yield sim


def stream_requests(sim: Simulator, count: int) -> list[dict[str, Any]]:
    return [
        {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": f"stream number {i}"}],
            "stream": True,
            "api_base": sim.base_url,
            "api_key": "sk-x",
        }
        for i in range(count)
    ]


@pytest.mark.slow
def test_a_streamed_batch_reports_the_simulator_first_token_and_token_delays(
    slow_streams: Simulator,
) -> None:
    sim = slow_streams
    with APIClient(processes=0, max_workers=8) as client:
        # litellm loads its streaming code on a process's first streamed call: not measured.
        client.make_requests(stream_requests(sim, 1))
        client.tracker.reset()
        sim.reset()
        responses = client.make_requests(stream_requests(sim, 8))

    assert client.last_errors == {}
    assert all(r.choices[0].message.content.startswith("echo: stream number") for r in responses)
    stats = sim.stats()["endpoints"]["chat_stream"]
    # The usage came from the provider (stream_options.include_usage), not a local count.
    assert client.tracker.total_completion_tokens == stats["completion_tokens"] == 8 * TOKENS
    timings = client.tracker.stream_timings("openai/gpt-4o-mini")
    assert timings.calls == 8
    for measure, expected in (
        (timings.time_to_first_token, FIRST_TOKEN_SECONDS),
        (timings.time_per_output_token, TOKEN_SECONDS),
        (timings.output_tokens_per_second, 1 / TOKEN_SECONDS),
    ):
        for found in (measure.mean, measure.percentile(50)):
            assert found is not None and 0.8 <= found / expected <= 1.2, (measure, found)
