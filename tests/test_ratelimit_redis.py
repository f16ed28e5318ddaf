"""``RedisStore`` beyond the conformance suite: the Lua port equals ``bucket.py``, and faults.

Run against a real ``redis-server`` (``tests/redis_server.py``); the conformance suite in
``test_ratelimit_store.py`` runs over ``RedisStore`` too.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_api_client.errors import ConfigurationError, RateLimitDelayExceeded, RequestTooLargeError
from llm_api_client.ratelimit import Cost, Limits, LocalStore, ProviderLimits, bucket
from tests.redis_server import RedisServer, fresh_key, needs_redis, shared_server
from tests.test_ratelimit_store import FakeClock

redis = pytest.importorskip("redis")

from llm_api_client.ratelimit.redis_store import (  # noqa: E402 - needs redis-py
    RedisRateLimiter,
    RedisStore,
    redacted_url,
)

pytestmark = needs_redis


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A private server, for tests that kill it."""
    private = RedisServer()
    yield private
    private.stop()


# --- the Lua port equals bucket.py --------------------------------------------------------------

costs = st.builds(
    Cost,
    input_tokens=st.integers(0, 3_000),
    output_tokens=st.integers(0, 1_000),
    requests=st.sampled_from([0, 1, 1, 1]),
)
maybe_limit = st.one_of(st.none(), st.sampled_from([30.0, 600.0, 5_000.0, math.inf, -1.0]))
operations = st.one_of(
    st.tuples(st.just("advance"), st.floats(0, 5)),
    st.tuples(st.just("reserve"), costs, st.sampled_from([None, 0.0, 0.5, 30.0])),
    st.tuples(st.just("claim")),
    st.tuples(st.just("cancel"), costs),
    st.tuples(st.just("give_back"), costs),
    st.tuples(st.just("pause"), st.sampled_from([0.0, 0.5, 3.0, math.nan]), st.integers(-1, 3)),
    st.tuples(st.just("learn"), maybe_limit, maybe_limit, st.one_of(st.none(), st.floats(0, 50))),
)


def apply(store: Any, operation: tuple[Any, ...], clock: FakeClock, shift: float) -> object:
    """One operation on ``store``; returns its answer, or the type of what it raised.

    A claim is made with ``shift``, the one in force (a waiter that saw no pause).
    """
    name, *args = operation
    try:
        if name == "advance":
            clock.advance(args[0])
        elif name == "reserve":
            return tuple(store.reserve(*args))
        elif name == "claim":
            return (store.claim_turn(shift),)
        elif name == "cancel":
            store.cancel_turn(args[0])
        elif name == "give_back":
            store.give_back(args[0])
        elif name == "pause":
            store.pause(args[0], None if args[1] < 0 else args[1])
        else:
            limits = {"requests": args[0], "tokens": args[1]}
            stated = {name: value for name, value in limits.items() if value is not None}
            left = {} if args[2] is None else {"requests": args[2]}
            learn = getattr(store, "learn_now", store.learn)  # every answer, not throttled
            learn(ProviderLimits(limits=stated, remaining=left))
    except (RateLimitDelayExceeded, RequestTooLargeError) as exc:
        return type(exc)
    return None


def same(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def same_answers(a: object, b: object) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@needs_redis
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sequence=st.lists(operations, min_size=1, max_size=40),
    rpm=st.sampled_from([None, 60.0, 600.0]),
    tpm=st.sampled_from([None, 6_000.0, 60_000.0]),
    probe=st.sampled_from([0.0, 2.0]),
)
def test_the_lua_scripts_compute_what_bucket_py_computes(
    sequence: list[tuple[Any, ...]], rpm: float | None, tpm: float | None, probe: float
) -> None:
    limits = Limits(requests_per_minute=rpm, tokens_per_minute=tpm, burst_seconds=0.5)
    clock = FakeClock()
    local = LocalStore(limits, clock=clock, probe_seconds=probe)
    remote = RedisStore(limits, shared_server().url, fresh_key(), clock=clock, probe_seconds=probe)
    try:
        for operation in sequence:
            shifts = local._state[bucket.SHIFT], remote.raw_state()[1][bucket.SHIFT]
            answers = (
                apply(local, operation, clock, shifts[0]),
                apply(remote, operation, clock, shifts[1]),
            )
            assert same_answers(*answers), (operation, answers)
            now, state = remote.raw_state()
            assert now == clock()
            mismatched = [
                slot for slot, (a, b) in enumerate(zip(local._state, state, strict=True))
                if not same(a, b)
            ]  # fmt: skip
            assert not mismatched, (operation, list(local._state), state)
    finally:
        remote.close()


# --- faults -------------------------------------------------------------------------------------


def test_redis_unreachable_a_reservation_waits_then_proceeds_logging_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(Limits(requests_per_minute=600), server.url, fresh_key())
    store.reserve(Cost(), None)
    server.kill9()
    restarted = threading.Timer(1.0, server.start)
    restarted.start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="llm_api_client.ratelimit.redis_store"):
        turn = store.reserve(Cost(), 30.0)
    waited = time.monotonic() - started
    restarted.join()
    assert 0.9 <= waited < 1.0 + 5  # it waited for Redis, not failed, not sent unpaced
    assert not turn.held and turn.wait > 0  # the new state is empty: a paced turn, no burst
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1
    store.close()


def test_redis_unreachable_a_reservation_fails_only_after_its_max_delay(
    server: RedisServer,
) -> None:
    store = RedisStore(Limits(requests_per_minute=600), server.url, fresh_key())
    store.reserve(Cost(), None)
    server.kill9()
    started = time.monotonic()
    with pytest.raises(RateLimitDelayExceeded):
        store.reserve(Cost(), 0.8)
    assert 0.8 - 0.3 <= time.monotonic() - started < 0.8 + 3  # backoff steps end near max_delay
    store.close()


def test_a_restart_that_loses_the_state_releases_no_burst(server: RedisServer) -> None:
    # 10 at once, then one every 10 s: a loaded machine's slowness refills nothing.
    limits = Limits(requests_per_minute=6, burst_seconds=100.0)
    store = RedisStore(limits, server.url, fresh_key())
    assert sum(_admitted_now(store) for _ in range(20)) == 10  # a full bucket at first
    server.restart()
    assert sum(_admitted_now(store) for _ in range(20)) == 0  # empty after the restart
    store.close()


def _admitted_now(store: RedisStore) -> bool:
    try:
        store.reserve(Cost(), 0.0)
    except RateLimitDelayExceeded:
        return False
    return True


def test_a_restart_re_arms_slow_start(server: RedisServer) -> None:
    store = RedisStore(Limits(requests_per_minute=600), server.url, fresh_key(), probe_seconds=5)
    store.learn(ProviderLimits())  # the first answer came: slow start is over
    assert not store.reserve(Cost(), None).held
    server.restart()
    first, second = store.reserve(Cost(), None), store.reserve(Cost(), None)
    assert (first.held, second.held) == (False, True)
    store.close()


def test_a_waiter_whose_state_was_lost_reserves_again(server: RedisServer) -> None:
    limiter = RedisRateLimiter(Limits(requests_per_minute=60), server.url, fresh_key())
    limiter.acquire(Cost())  # the one place; the next waits about 1 s
    threading.Timer(0.3, server.restart).start()
    limiter.acquire(Cost())
    assert limiter.snapshot().admitted == 1  # charged in the new state, not let through free
    limiter.close()


def test_a_refund_whose_reply_was_lost_is_applied_once(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(requests_per_minute=600, tokens_per_minute=60_000)  # 5 requests, 500 tokens
    store = RedisStore(limits, shared_server().url, fresh_key(), clock=FakeClock())
    store.reserve(Cost(input_tokens=400), None)
    script = store._scripts["give_back"]
    calls = []

    def reply_lost(*args: Any, **kwargs: Any) -> Any:
        calls.append(script(*args, **kwargs))  # Redis ran it ...
        if len(calls) == 1:
            raise redis.ConnectionError("connection reset")  # ... but the reply never came
        return calls[-1]

    monkeypatch.setitem(store._scripts, "give_back", reply_lost)
    store.give_back(Cost(input_tokens=100, requests=0))
    assert len(calls) == 2  # retried
    assert store.snapshot().levels["tokens"] == pytest.approx(200)  # 500 - 400 + 100, once
    store.close()


# --- news across clients ------------------------------------------------------------------------


def test_a_pause_reaches_another_clients_sleeping_waiter_promptly() -> None:
    url, key = shared_server().url, fresh_key()
    limits = Limits(requests_per_minute=20)  # one place, then one every 3 s
    waiter, other = RedisRateLimiter(limits, url, key), RedisRateLimiter(limits, url, key)
    waiter.acquire(Cost())
    outcome: list[float] = []

    def wait_for_a_turn() -> None:
        with pytest.raises(RateLimitDelayExceeded):
            waiter.acquire(Cost(), max_delay=10.0)
        outcome.append(time.monotonic())

    thread = threading.Thread(target=wait_for_a_turn)
    thread.start()
    time.sleep(0.5)  # it sleeps until its turn, 3 s out
    paused_at = time.monotonic()
    other.pause(60.0)  # another client's 429: the turn moves past max_delay
    thread.join(timeout=10)
    assert outcome, "the waiter never gave up"
    assert outcome[0] - paused_at < 1.5  # told at once, not at its old turn 2.5 s later
    assert waiter.snapshot().waiters == 0  # it gave its turn back
    waiter.close()
    other.close()


def test_learned_limits_reach_every_client() -> None:
    url, key = shared_server().url, fresh_key()
    first = RedisStore(Limits(requests_per_minute=6_000), url, key)
    second = RedisStore(Limits(requests_per_minute=6_000), url, key)
    first.learn(ProviderLimits(limits={"requests": 600}))
    assert second.snapshot().rates_per_minute == pytest.approx({"requests": 600})
    first.close()
    second.close()


# --- configuration ------------------------------------------------------------------------------


def test_a_different_configuration_of_the_same_key_warns_once_and_the_first_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, key = shared_server().url, fresh_key()
    first = RedisStore(Limits(requests_per_minute=600), url, key)
    first.reserve(Cost(), None)
    second = RedisStore(Limits(requests_per_minute=6_000), url, key)
    with caplog.at_level(logging.WARNING, logger="llm_api_client.ratelimit.redis_store"):
        for _ in range(3):
            second.reserve(Cost(), None)
    assert len([r for r in caplog.records if "other limits" in r.getMessage()]) == 1
    assert second.snapshot().rates_per_minute == pytest.approx({"requests": 600})
    first.close()
    second.close()


def test_a_state_of_another_layout_is_refused_clearly() -> None:
    url, key = shared_server().url, fresh_key()
    store = RedisStore(Limits(requests_per_minute=600), url, key)
    shared_server().client().eval("redis.call('SET', KEYS[1], cmsgpack.pack({99}))", 1, store.key)
    with pytest.raises(ConfigurationError, match="another version"):
        store.reserve(Cost(), None)
    store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://quota.internal:6380/2", {"host": "quota.internal", "port": 6380, "db": 2}),
        ("rediss://quota.internal:6380/0", {"host": "quota.internal", "port": 6380, "db": 0}),
        ("unix:///run/redis/redis.sock", {"path": "/run/redis/redis.sock"}),
        ("unix:///run/redis/redis.sock?db=3", {"path": "/run/redis/redis.sock", "db": 3}),
    ],
)
def test_url_forms(url: str, expected: dict[str, object]) -> None:
    store = RedisStore(Limits(requests_per_minute=600), url)  # connects on first use only
    pool = store._client.connection_pool
    assert {name: pool.connection_kwargs.get(name) for name in expected} == expected
    assert ("SSL" in pool.connection_class.__name__) == url.startswith("rediss")
    assert store.key == "{llm-api-client:default}"  # a hash tag: Redis Cluster keeps it whole
    store.close()


def test_a_password_never_reaches_the_log() -> None:
    assert redacted_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redacted_url("rediss://me:s3cret@host/1") == "rediss://me:***@host/1"
    assert redacted_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"


def test_a_pickled_store_is_the_same_quota_on_its_own_connection() -> None:
    """What a Ray actor receives: the settings, connected anew; the limiter wakes on news."""
    import pickle

    limits = Limits(requests_per_minute=600, burst_seconds=1)
    store = RedisStore(limits, shared_server().url, fresh_key(), probe_seconds=7, idle_expiry=30)
    store.reserve(Cost(), None)
    copy = pickle.loads(pickle.dumps(store))
    assert copy._client is not store._client  # its own connection, never the original's
    assert (copy.key, copy.limits, copy._config) == (store.key, store.limits, store._config)
    copy.reserve(Cost(), None)
    assert copy.news.incarnation == store.news.incarnation  # one quota: the same state
    assert isinstance(copy.limiter(), RedisRateLimiter)
    assert "s3cret" not in repr(
        pickle.loads(pickle.dumps(RedisStore(limits, "redis://:s3cret@h/0")))
    )
    store.close()
    copy.close()


# --- wiring: APIClient, the environment, the CLI ------------------------------------------------


def _admitted(url: str, key: str) -> int:
    return RedisStore(Limits(requests_per_minute=600), url, key).snapshot().admitted


@pytest.mark.parametrize("processes", [0, 2])
def test_clients_naming_one_store_and_key_share_one_quota(processes: int) -> None:
    from llm_api_client import APIClient
    from tests.fakes import FakeCompletion, chat

    url, key = shared_server().url, fresh_key()
    requests = [chat(f"item {i}") for i in range(10)]
    for _ in range(2):  # two clients, one after the other: the second finds the first's quota
        with APIClient(
            6_000, None, processes=processes, completion=FakeCompletion(),
            rate_limit_store=url, rate_limit_key=key,
        ) as client:  # fmt: skip
            assert all(client.make_requests(requests))
    # Every request, in the calling process or in a worker, was admitted by the Redis quota.
    assert _admitted(url, key) == 20
    assert _admitted(url, fresh_key()) == 0  # another key is another quota


def test_the_store_comes_from_the_environment_and_a_bad_url_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llm_api_client import APIClient

    monkeypatch.setenv("LLM_API_CLIENT_RATE_LIMIT_STORE", "redis://quota.internal:6379/0")
    assert APIClient().rate_limit_store == "redis://quota.internal:6379/0"
    assert APIClient(rate_limit_store="unix:///run/r.sock").rate_limit_store == "unix:///run/r.sock"
    monkeypatch.delenv("LLM_API_CLIENT_RATE_LIMIT_STORE")
    assert APIClient().rate_limit_store is None
    with pytest.raises(ConfigurationError, match="rate_limit_store"):
        APIClient(rate_limit_store="http://:secret@quota.internal")
    with pytest.raises(ConfigurationError, match="rate_limit_key"):
        APIClient(rate_limit_store="redis://quota.internal", rate_limit_key="")


def test_the_cli_passes_the_store_and_key_to_the_client() -> None:
    from llm_api_client.cli import main as cli_main
    from llm_api_client.cli import run as run_module

    argv = ["run", "in.jsonl", "-o", "out.jsonl", "--rate-limit-store", "rediss://q:6380/1",
            "--rate-limit-key", "team-a"]  # fmt: skip
    with run_module.make_client(cli_main.build_parser().parse_args(argv)) as client:
        assert (client.rate_limit_store, client.rate_limit_key) == ("rediss://q:6380/1", "team-a")
