"""Batches on a Ray cluster: actors in the worker processes' place, one quota, nothing resent.

One local cluster for the module (``ray.init(num_cpus=2)``); the simulator enforces 3,000 RPM per
1-s window with 30 ms latency, as issue 16's done-when cases, scaled down for a loaded machine.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")

from llm_api_client import APIClient  # noqa: E402
from llm_api_client.errors import ConfigurationError, RequestTooLargeError  # noqa: E402
from llm_api_client.ratelimit import Cost, Limits, LocalStore, QuotaLimiter  # noqa: E402
from llm_api_client.ratelimit.cluster_store import ClusterStore  # noqa: E402
from llm_api_client.simulator import Simulator  # noqa: E402
from tests.fakes import last_user_text, make_response  # noqa: E402
from tests.redis_server import fresh_key, shared_server  # noqa: E402
from tests.test_reliability import sim_request  # noqa: E402

# Each actor imports litellm when it starts: seconds on an idle machine, a minute under load.
pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
RPM = 3_000
LATENCY_MS = 30
BATCH_TIMEOUT = 150.0  # a lost item must fail the test, not hang it


@pytest.fixture(scope="module")
def cluster():
    # The actors import this project (and the tests' fakes) from the checkout.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()


def admission_span(stats: dict[str, Any]) -> int:
    """Whole seconds from the first admission's second to the last's (the span is below +1)."""
    busy = [second for second, count in enumerate(stats["admissions_per_second"]) if count]
    return busy[-1] - busy[0]


def assert_tracker_matches(client: APIClient, stats: dict[str, Any], requests: int) -> None:
    tracker = client.tracker
    assert tracker.num_api_calls == requests == stats["answered"]
    assert tracker.total_attempts == stats["received"]
    assert tracker.num_rate_limited == stats["rejected_429"]
    assert tracker.total_prompt_tokens == stats["prompt_tokens"]
    assert tracker.total_completion_tokens == stats["completion_tokens"]


def redis_store() -> dict[str, str]:
    """A fresh quota on the session's redis-server (skips without one)."""
    return {"rate_limit_store": shared_server().url, "rate_limit_key": fresh_key()}


@pytest.mark.parametrize(
    ("n", "store"),
    [(300, dict), (200, redis_store)],  # 6 s, 4 s at the limit (the done-when cases: 600, 1,500)
    ids=["cluster-store", "redis"],
)
def test_a_batch_on_two_actors_keeps_to_the_limit(cluster, n, store):
    options = store()
    with Simulator(rpm=RPM, latency_ms=LATENCY_MS) as sim:
        with APIClient(RPM, None, backend="ray", processes=2, **options) as client:
            requests = [sim_request(sim, i, timeout=None) for i in range(n)]
            responses = client.make_requests_with_retries(
                requests, max_retries=4, timeout=BATCH_TIMEOUT
            )
        stats = sim.stats()

    for i, response in enumerate(responses):
        assert response is not None, client.last_errors.get(i)
        assert response.choices[0].message.content.startswith(f"echo: item {i}")
    assert stats["rejected_429"] <= 3, stats
    assert admission_span(stats) <= n / (RPM / 60) * 1.06 + 1.5, stats["admissions_per_second"]
    assert_tracker_matches(client, stats, n)
    assert_redis_admitted(options, stats["received"])


def assert_redis_admitted(options: dict[str, str], sent: int) -> None:
    """With a Redis store, every request sent took its turn there."""
    if options:
        from llm_api_client.ratelimit.redis_store import RedisStore

        quota = RedisStore(Limits(), options["rate_limit_store"], options["rate_limit_key"])
        assert quota.snapshot().admitted == sent
        quota.close()


class CrashingCompletion:
    """Answers ``<index> <pid>`` after ``delay``; the first ``#crash`` seen kills its actor.

    Every call leaves a file ``<index>-<n>`` in ``calls``, so sends are counted from outside.
    """

    def __init__(self, calls: Path, delay: float) -> None:
        self.calls = calls
        self.delay = delay

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        text = last_user_text(messages)
        index = text.split()[0]
        sends = len(list(self.calls.glob(f"{index}-*")))
        (self.calls / f"{index}-{sends}").touch()
        if "#crash" in text and not (self.calls / "dead").exists():
            (self.calls / "dead").write_text(str(os.getpid()))
            os.kill(os.getpid(), 9)
        time.sleep(self.delay)
        return make_response(model, f"{index} {os.getpid()}")


def sends_per_index(calls: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for path in calls.glob("*-*"):
        index = int(path.name.split("-")[0])
        counts[index] = counts.get(index, 0) + 1
    return counts


def test_a_killed_actors_requests_are_sent_again_once_and_nothing_is_lost(cluster, tmp_path):
    n, crash_at = 120, 40
    completion = CrashingCompletion(tmp_path, delay=0.2)
    requests = [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{i} #crash"}]}
        if i == crash_at
        else {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{i}"}]}
        for i in range(n)
    ]
    with APIClient(
        None, None, backend="ray", processes=2, max_workers=8, completion=completion
    ) as client:
        with client.stream(requests, timeout=BATCH_TIMEOUT) as stream:
            results = list(stream)
        dead_pid = (tmp_path / "dead").read_text()
        after = client.make_requests([requests[i] for i in range(20)])

    answered = sorted(result.index for result in results)
    assert answered == list(range(n))  # each index exactly once: nothing lost, none twice
    for result in results:
        assert result.ok, result.error
        assert result.response.choices[0].message.content.split()[0] == str(result.index)
    sends = sends_per_index(tmp_path)
    resent = {index for index, count in sends.items() if count == 2}
    assert set(sends.values()) <= {1, 2}  # sent again at most once
    assert crash_at in resent and len(resent) >= 2  # the crash and the others the actor held
    pids = {response.choices[0].message.content.split()[1] for response in after}
    assert len(pids) == 2 and dead_pid not in pids  # the dead actor was replaced


def test_the_cluster_store_is_one_quota_for_every_copy_and_speaks_our_errors(cluster):
    store = ClusterStore.create(Limits(requests_per_minute=60, burst_seconds=10))
    try:
        copy = ray.get(ray.put(store))  # what an actor receives
        limiter = QuotaLimiter(copy)
        for _ in range(10):  # the whole burst, through the copy
            assert limiter.acquire(Cost()) == 0.0
        assert store.snapshot().admitted == 10
        assert store.reserve(Cost(), None).wait > 0  # the original sees the copy's admissions
        with pytest.raises(RequestTooLargeError):
            store.reserve(Cost(requests=100), None)
        copy.close()  # a copy does not own the actor
        assert not stopped_within(store, seconds=2)
        assert store.snapshot().admitted == 11
    finally:
        store.close()
    assert stopped_within(store, seconds=60)


def stopped_within(store: ClusterStore, seconds: float) -> bool:
    """Whether the store's actor is gone within ``seconds`` (``ray.kill`` does not wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            store.snapshot()
        except ray.exceptions.RayActorError:
            return True
        time.sleep(0.1)
    return False


def test_an_actor_runs_the_limiter_its_store_asks_for():
    from llm_api_client.engine.ray_backend import limiter_over
    from llm_api_client.ratelimit.redis_store import RedisRateLimiter, RedisStore

    store = RedisStore(Limits(requests_per_minute=60), shared_server().url, fresh_key())
    assert isinstance(limiter_over(store), RedisRateLimiter)  # it wakes on news of pauses
    assert type(limiter_over(LocalStore(Limits(requests_per_minute=60)))) is QuotaLimiter
    store.close()


def test_backend_names_are_checked():
    with pytest.raises(ConfigurationError, match="backend"):
        APIClient(backend="dask")
    with pytest.raises(ConfigurationError, match="backend options"):
        APIClient(ray_actor_options={"num_cpus": 1})


def row_request(base_url: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row's request to the simulator (picklable: it travels to the processor's actors)."""
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": f"item {row['id']}"}],
        "api_base": base_url,
        "api_key": "sk-test",
        "max_tokens": 8,
    }


@pytest.mark.parametrize(
    ("n", "store"),
    [(200, dict), (150, redis_store)],  # 4 s, 3 s at the limit (the done-when case: 600)
    ids=["cluster-store", "redis"],
)
def test_a_processor_answers_every_row_of_a_dataset_with_its_own_response(cluster, n, store):
    from llm_api_client.ray import build_processor

    options = store()
    with Simulator(rpm=RPM, latency_ms=LATENCY_MS) as sim:
        processor = build_processor(
            functools.partial(row_request, sim.base_url),
            concurrency=2,
            max_requests_per_minute=RPM,
            max_tokens_per_minute=None,
            max_retries=4,
            **options,
        )
        try:
            rows = processor(ray.data.range(n)).take_all()
        finally:
            processor.close()
        stats = sim.stats()

    assert sorted(row["id"] for row in rows) == list(range(n))
    for row in rows:
        assert row["error"] is None
        content = row["response"]["choices"][0]["message"]["content"]
        assert content.startswith(f"echo: item {row['id']}"), (row["id"], content)
    assert stats["rejected_429"] <= 3, stats
    assert admission_span(stats) <= n / (RPM / 60) * 1.06 + 1.5, stats["admissions_per_second"]
    assert stats["answered"] == n
    assert_redis_admitted(options, stats["received"])
