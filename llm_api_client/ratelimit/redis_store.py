"""``RedisStore``: one quota for every client, in any process on any host, naming one Redis key.

::

    host A: APIClient ──▶ RedisRateLimiter ─┐  EVALSHA reserve / claim / pause / learn / ...
    host B: APIClient ──▶ RedisRateLimiter ─┼──────────────▶ Redis: {llm-api-client:<key>}
    host C: worker processes, each its own ─┘  ◀── PUBLISH {llm-api-client:<key>}:news
                                               (a pause, the end of slow start: sleepers wake)

Each ``QuotaStore`` operation is one Lua script (``redis_bucket.lua``, ``bucket.py``'s arithmetic
translated) run atomically by Redis with EVALSHA (loaded again after a restart). Time is Redis's
(``TIME`` inside the script); only costs and durations travel, so hosts need no common clock.
Floats come back as strings. The keys carry a hash tag, so Redis Cluster keeps them together,
and expire after ``REDIS_IDLE_EXPIRY_SECONDS`` idle. A reservation is one round trip.

Faults: Redis unreachable, an operation waits and tries again with backoff (logged once per
outage): a reservation until its ``max_delay`` (then ``RateLimitDelayExceeded``, unsent), so a
request is never sent unpaced. A state lost with a Redis restart is made again empty with slow
start armed, so the restart releases no burst; waiters who reserved in the lost state reserve
again. A refund carries a token and runs once per token, so retrying it never doubles it. Clients
configured with other limits for the same key follow the first one's, with a warning.

URLs: ``redis://[:password@]HOST:PORT/DB``, ``rediss://...`` (TLS), ``unix:///path/to.sock``.

Example::

    limiter = RedisRateLimiter(Limits(requests_per_minute=3_000), "redis://10.0.0.5:6379/0")
    admission = limiter.admit(Cost(input_tokens=120, output_tokens=400))
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import math
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from llm_api_client import _constants as constants
from llm_api_client.errors import ConfigurationError
from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import (
    Admission,
    Clock,
    Cost,
    LimiterSnapshot,
    Limits,
    ProviderLimits,
    Sleep,
    Turn,
)
from llm_api_client.ratelimit.limiter import QuotaLimiter

__all__ = ["RedisRateLimiter", "RedisStore", "RedisTurn"]

logger = logging.getLogger(__name__)

OPERATIONS = ("reserve", "claim_turn", "give_back", "cancel_turn", "pause", "learn", "init",
              "snapshot")  # fmt: skip


class RedisTurn(Turn):
    """A ``Turn`` that also names the incarnation of the state it was reserved in."""

    incarnation: str


@functools.cache
def script_source(operation: str) -> str:
    """The Lua script of one operation: the constants, the shared arithmetic, its entry point."""
    body = importlib.resources.files(__package__).joinpath("redis_bucket.lua").read_text()
    prelude = (
        f"local MIN_REQUEST_BUCKET_CAPACITY = {constants.MIN_REQUEST_BUCKET_CAPACITY!r}\n"
        f"local RATE_DECREASE = {constants.RATE_DECREASE_ON_REPEATED_429!r}\n"
        f"local REPEATED_429_SECONDS = {constants.REPEATED_429_SECONDS!r}\n"
        f"local LOW_LIMIT_PER_MINUTE = {constants.LOW_LIMIT_PER_MINUTE!r}\n"
        f"local LOW_LIMIT_PACE = {constants.LOW_LIMIT_PACE!r}\n"
        f"local LAYOUT_VERSION = {bucket.LAYOUT_VERSION!r}\n"
        f"local REFUND_TOKEN_MS = {round(constants.REDIS_REFUND_TOKEN_SECONDS * 1000)}\n"
    )
    return f"{prelude}{body}\nreturn {operation}()\n"


def redacted_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))


def _number(value: float | None) -> str:
    """A float for the script: exact (repr round-trips), "" for none or not finite."""
    if value is None or not math.isfinite(value):
        return ""
    return repr(float(value))


class _Unreachable(Exception):
    """Redis did not answer within the time an operation may wait for it."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"Redis unreachable for {waited:.3f} s")
        self.waited = waited


class _News:
    """What this process knows of the state's pauses, from replies and pub/sub messages.

    ``count`` grows with each piece of news, so a sleeper that saw ``count`` wakes when it moves.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.count = 0
        self.incarnation = ""
        self.shift = 0.0

    def heard(self, incarnation: str, shift: float, message: bool = False) -> bool:
        """Record a reply's (or a message's) state; True when the incarnation changed."""
        with self.changed:
            reborn = incarnation != self.incarnation
            if message or reborn or shift > self.shift:
                self.shift = shift if reborn else max(shift, self.shift)
                self.incarnation = incarnation
                self.count += 1
                self.changed.notify_all()
            return reborn

    def shift_of(self, incarnation: str) -> float | None:
        """The latest shift of that incarnation of the state; None for another one."""
        return self.shift if incarnation == self.incarnation else None

    def wait(self, seconds: float, seen: int) -> None:
        """Sleep up to ``seconds``, less if news arrives after ``seen``."""
        with self.changed:
            if self.count == seen:
                self.changed.wait(seconds)


class RedisStore:
    """A quota in Redis under ``key``, shared by every store naming the same ``url`` and key.

    ``probe_seconds``: slow start, as for ``LocalStore`` (also re-armed when the state is lost).
    ``clock``: tests only, a time the scripts use instead of Redis's. ``sleep`` and
    ``monotonic`` time the retries while Redis is unreachable.
    """

    def __init__(
        self,
        limits: Limits,
        url: str,
        key: str = "default",
        *,
        probe_seconds: float = 0.0,
        clock: Clock | None = None,
        sleep: Sleep = time.sleep,
        monotonic: Clock = time.monotonic,
        idle_expiry: float = constants.REDIS_IDLE_EXPIRY_SECONDS,
    ) -> None:
        configured = bucket.configured_limits(limits)
        if not (math.isfinite(probe_seconds) and probe_seconds >= 0):
            raise ConfigurationError(f"probe_seconds must be >= 0, got {probe_seconds!r}")
        if not key:
            raise ConfigurationError("rate_limit_key must not be empty")
        self.limits = limits
        self.url = url
        self._name = key
        self._probe_seconds = probe_seconds
        self._idle_expiry = idle_expiry
        self.key = f"{{llm-api-client:{key}}}"
        self.channel = f"{self.key}:news"
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._config = [
            *(_number(value or 0.0) or "0" for value in configured),
            repr(float(limits.burst_seconds)),
            repr(float(probe_seconds)),
            str(max(1, round(idle_expiry * 1000))),
        ]
        self.news = _News()
        self._lock = threading.Lock()
        self._pid = -1
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._listener: _Listener | None = None
        self._initialized = False
        self._init_lock = threading.Lock()
        self._down = False
        self._learned: tuple[object, float] | None = None  # limits last sent, when
        self._unclaimed: list[Any] = ["", 0]  # incarnation, waiters admitted without a claim
        self._connect(url)  # a bad URL fails here, not at the first request

    # -- connection -----------------------------------------------------------------------
    def _connect(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=constants.REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=constants.REDIS_SOCKET_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),  # never retried blindly: this store decides (refunds)
        )
        self._scripts = {op: self._client.register_script(script_source(op)) for op in OPERATIONS}
        self._pid = os.getpid()

    def _redis(self) -> Any:
        """This process's client: a forked child makes its own (and its own listener)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._listener = None
                    self._connect(self.url)
        return self._client

    def listen(self) -> None:
        """Start hearing news on the channel (pauses, the end of slow start); idempotent."""
        self._redis()
        with self._lock:
            if self._listener is None:
                self._listener = _Listener(self)

    def hearing(self) -> bool:
        """Whether every pause since this process last heard the state reaches it as it happens.

        True while the listener is subscribed, from the state it read once subscribed on.
        """
        listener = self._listener
        return listener is not None and listener.subscribed and self._pid == os.getpid()

    # -- running a script -----------------------------------------------------------------
    def _run(
        self,
        operation: str,
        args: Sequence[str],
        *,
        give_up_after: float | None = None,
        keys: Sequence[str] = (),
    ) -> list[str]:
        """Run ``operation``'s script, retrying while Redis is unreachable.

        Raises ``_Unreachable`` once a retry would end after ``give_up_after`` seconds.
        """
        started, backoff = self._monotonic(), constants.REDIS_RETRY_FIRST_SECONDS
        while True:
            try:
                if not self._initialized and operation != "init":
                    self._initialize()  # once, before this process's first operation
                self._redis()
                script = self._scripts[operation]
                now = "" if self._clock is None else repr(float(self._clock()))
                reply = script(keys=[self.key, *keys], args=[now, *self._config, *args])
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                waited = self._monotonic() - started
                if give_up_after is not None and waited + backoff > give_up_after:
                    raise _Unreachable(waited) from exc
                self._unreachable(exc)
                self._sleep(backoff)
                backoff = min(2 * backoff, constants.REDIS_RETRY_MAX_SECONDS)
                continue
            except redis.ResponseError as exc:
                if "LLM_API_CLIENT_LAYOUT" in str(exc):
                    raise ConfigurationError(self._layout_problem()) from exc
                raise
            self._reachable()
            return list(reply)

    def _unreachable(self, exc: Exception) -> None:
        if not self._down:
            self._down = True
            logger.warning(
                "Redis at %s is unreachable (%s): requests wait for it and retry",
                redacted_url(self.url),
                type(exc).__name__,
            )

    def _reachable(self) -> None:
        if self._down:
            self._down = False
            logger.warning("Redis at %s answers again", redacted_url(self.url))

    def _layout_problem(self) -> str:
        return (
            f"the quota at {self.key} was written by another version of llm-api-client; use "
            "another rate_limit_key, or the same version everywhere"
        )

    def _initialize(self) -> None:
        """Make the state (full) unless it exists; warn when it was configured otherwise."""
        with self._init_lock:
            if self._initialized:
                return
            try:
                layout, *config = self._run("init", [], give_up_after=0.0)
            except _Unreachable:
                return  # the next operation tries again
            self._initialized = True
        if float(layout) != bucket.LAYOUT_VERSION:
            raise ConfigurationError(self._layout_problem())
        mine = [float(value) for value in self._config[4:5] + self._config[:4]]
        if [float(value) for value in config] != mine:
            logger.warning(
                "the quota %s at %s was configured with other limits (burst_seconds, then "
                "requests, tokens, input and output tokens per minute: %s, not %s); the first "
                "configuration stands",
                self.key,
                redacted_url(self.url),
                [float(value) for value in config],
                mine,
            )

    def _heal(self, incarnation: str, shift: str) -> float:
        """Take in the state a reply ends with; returns the shift."""
        if self.news.heard(incarnation, float(shift)):
            self._learned = None  # a new state is in slow start: the next answer must go
        return float(shift)

    # -- the QuotaStore operations --------------------------------------------------------
    def reserve(self, cost: Cost, max_delay: float | None) -> RedisTurn:
        settled, incarnation = self._take_unclaimed()
        args = [*map(_number, bucket.costs_of(cost)), _number(max_delay), str(settled), incarnation]
        try:
            reply = self._run("reserve", args, give_up_after=max_delay)
        except _Unreachable as unreachable:
            self.admitted_unclaimed(incarnation, settled)  # for the next reservation
            assert max_delay is not None
            raise bucket.delay_exceeded(unreachable.waited, max_delay) from None
        if reply[0] == "too_large":
            index, cost_, limit = int(reply[1]), float(reply[2]), float(reply[3])
            raise bucket._too_large(index, cost_, limit)
        if reply[0] == "late":
            assert max_delay is not None
            raise bucket.delay_exceeded(float(reply[1]), max_delay)
        _, wait, held, episodes, incarnation, shift = reply
        if held == "1":
            self._learned = None  # slow start: the next answer ends it for everyone
        turn = RedisTurn(float(wait), self._heal(incarnation, shift), int(float(episodes)),
                         held == "1")  # fmt: skip
        turn.incarnation = incarnation
        return turn

    def admitted_unclaimed(self, incarnation: str, count: int = 1) -> None:
        """Waiters admitted without a claim: the next reservation uncounts them (no round trip)."""
        with self._lock:
            if incarnation == self._unclaimed[0]:
                self._unclaimed[1] += count
            else:
                self._unclaimed = [incarnation, count]

    def _take_unclaimed(self) -> tuple[int, str]:
        with self._lock:
            (incarnation, count), self._unclaimed = self._unclaimed, ["", 0]
        return int(count), str(incarnation)

    def claim(self, shift: float, incarnation: str) -> float | None:
        """``claim_turn`` of a turn of that incarnation; None: its state is lost, reserve again."""
        reply = self._run("claim_turn", [_number(shift), incarnation])
        if reply[0] == "lost":
            return None
        return self._heal(*reply)

    def claim_turn(self, shift: float) -> float:
        claimed = self.claim(shift, self.news.incarnation)
        return shift if claimed is None else claimed  # lost: the new, empty state absorbs it

    def cancel(self, cost: Cost, incarnation: str) -> None:
        """``cancel_turn`` for a turn of that incarnation (of a lost one: nothing to give back)."""
        args = [*map(_number, bucket.costs_of(cost)), incarnation]
        self._heal(*self._run("cancel_turn", args, keys=[self._token()]))

    def cancel_turn(self, cost: Cost) -> None:
        self.cancel(cost, self.news.incarnation)

    def give_back(self, cost: Cost) -> None:
        args = list(map(_number, bucket.costs_of(cost)))
        try:
            reply = self._run(
                "give_back",
                args,
                keys=[self._token()],  # the same token on every retry: applied once
                give_up_after=constants.REDIS_REFUND_RETRY_SECONDS,
            )
        except _Unreachable:
            logger.warning("a refund was dropped: Redis was unreachable for too long")
            return
        self._heal(*reply)

    def _token(self) -> str:
        return f"{self.key}:refund:{uuid.uuid4().hex}"

    def pause(self, seconds: float, episode: int | None) -> None:
        args = [_number(seconds) or "0", "" if episode is None else str(episode)]
        self._tell("pause", args)

    def learn(self, limits: ProviderLimits) -> None:
        stated = dict(limits.limits)
        last = self._learned
        now = self._monotonic()
        if (
            last is not None
            and last[0] == stated
            and now - last[1] < constants.REDIS_REMAINING_EVERY_SECONDS
        ):
            return  # nothing new but remaining levels, which went less than a second ago
        self._learned = (stated, now)
        self.learn_now(limits)

    def learn_now(self, limits: ProviderLimits) -> None:
        """``learn``, sent whatever was sent before."""
        stated = [limits.limits.get(name) for name in bucket.BUCKETS]
        left = [limits.remaining.get(name) for name in bucket.BUCKETS]
        self._tell("learn", [_number(value) for value in stated + left])

    def _tell(self, operation: str, args: list[str]) -> None:
        """News for every host (a pause, learned limits): retried a while, then dropped."""
        try:
            reply = self._run(operation, args, give_up_after=constants.REDIS_NEWS_RETRY_SECONDS)
        except _Unreachable:
            logger.warning("Redis unreachable: a %s was not shared with the other hosts", operation)
            return
        self._heal(*reply)

    def raw_state(self) -> tuple[float, list[float]]:
        """The store's now and ``bucket``'s state array, as Redis holds them."""
        reply = self._run("snapshot", [])
        self._heal(*reply[-2:])
        return float(reply[0]), [float(value) for value in reply[1:-2]]

    def snapshot(self) -> LimiterSnapshot:
        now, state = self.raw_state()
        return bucket.snapshot(state, now)

    def close(self) -> None:
        """Stop listening and close this process's connections (idempotent)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        if self._client is not None and self._pid == os.getpid():
            self._client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redacted_url(self.url)!r}, key={self.key!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its settings, never its connections: a copy (a Ray actor's) connects anew.

        The URL travels whole, password included, as the copy needs it to connect.
        """
        settings: dict[str, Any] = {"probe_seconds": self._probe_seconds, "clock": self._clock,
                                    "sleep": self._sleep, "monotonic": self._monotonic,
                                    "idle_expiry": self._idle_expiry}  # fmt: skip
        return functools.partial(RedisStore, **settings), (self.limits, self.url, self._name)

    def limiter(self) -> RedisRateLimiter:
        """The limiter a Ray actor runs over this store (once received): it wakes on news."""
        return RedisRateLimiter.over(self)


class _Listener:
    """A thread that hears the store's channel and passes each message to its ``news``.

    It resubscribes after a lost connection; what it missed meanwhile, the next reply heals.
    """

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._stopped = threading.Event()
        self.subscribed = False
        self._pubsub: Any = None
        self._thread = threading.Thread(target=self._run, name="redis-quota-news", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = constants.REDIS_RETRY_FIRST_SECONDS
        while not self._stopped.is_set():
            try:
                self._pubsub = self._store._redis().pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self._store.channel)
                self._pubsub.get_message(timeout=constants.REDIS_SOCKET_TIMEOUT_SECONDS)
                reply = self._store._run("snapshot", [], give_up_after=0.0)
                self._store._heal(*reply[-2:])  # the state as of the subscription
                self.subscribed = True
                backoff = constants.REDIS_RETRY_FIRST_SECONDS
                self._hear(self._pubsub)
            except (redis.ConnectionError, redis.TimeoutError, ValueError, AttributeError,
                    _Unreachable):  # fmt: skip
                self.subscribed = False
                self._stopped.wait(backoff)
                backoff = min(2 * backoff, constants.REDIS_RETRY_MAX_SECONDS)
            finally:
                self.subscribed = False
                if self._pubsub is not None:
                    self._pubsub.close()

    def _hear(self, pubsub: Any) -> None:
        while not self._stopped.is_set():
            message = pubsub.get_message(timeout=constants.REDIS_NAP_SLICE_SECONDS)
            if message is not None and message["type"] == "message":
                incarnation, shift = message["data"].split()
                self._store.news.heard(incarnation, float(shift), message=True)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2 * constants.REDIS_NAP_SLICE_SECONDS + 1)


class RedisRateLimiter(QuotaLimiter):
    """The rate limiter over a ``RedisStore``; its sleepers wake on news from other hosts.

    A waiter learns of a pause started anywhere as it happens (its turn moves back, and if that
    passes its ``max_delay`` it gives up at once), and of the end of slow start; one whose state
    was lost (a Redis restart) reserves again in the new one. Arguments as for ``RedisStore``;
    ``sleep`` (``cancellation.sleep`` in the engine) is checked every
    ``REDIS_NAP_SLICE_SECONDS`` while a waiter sleeps on news.
    """

    store: RedisStore

    def __init__(
        self,
        limits: Limits,
        url: str,
        key: str = "default",
        *,
        probe_seconds: float = 0.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        store = RedisStore(
            limits, url, key, probe_seconds=probe_seconds, sleep=sleep, monotonic=clock
        )
        super().__init__(store, clock=clock, sleep=sleep)

    @classmethod
    def over(cls, store: RedisStore) -> RedisRateLimiter:
        """A limiter over an existing store, timed as the store is."""
        limiter = cls.__new__(cls)
        QuotaLimiter.__init__(limiter, store, clock=store._monotonic, sleep=store._sleep)
        return limiter

    def unlink(self) -> None:
        """Nothing to remove: the quota outlives its clients (until it expires idle).

        The process backend calls this where a shared-memory limiter removes its block.
        """

    def _nap(self, seconds: float, seen: int) -> None:
        """Sleep up to ``seconds``, less when news arrives; the injected sleep may cancel."""
        self.store.listen()
        self.store.news.wait(min(seconds, constants.REDIS_NAP_SLICE_SECONDS), seen)
        self._sleep(0.0)

    def _wait(self, cost: Cost, turn: Turn, max_delay: float | None) -> Admission:
        start = self._clock()
        while True:
            while turn.held:
                seen = self.store.news.count
                self._hold_for_news(turn.wait, start, max_delay, seen)
                turn = self.store.reserve(cost, _left(max_delay, self._clock() - start))
            if turn.wait <= 0 or self._wait_for(cost, turn, start, max_delay):
                return Admission(self._clock() - start, turn.episode)
            turn = self.store.reserve(cost, _left(max_delay, self._clock() - start))

    def _hold_for_news(self, hold: float, start: float, max_delay: float | None, seen: int) -> None:
        """Slow start holds us: wait for the first answer's news, asking again now and then."""
        waited = self._clock() - start
        nap = min(hold, constants.REDIS_HOLD_POLL_SECONDS)
        if max_delay is not None and waited + nap > max_delay:
            raise bucket.delay_exceeded(waited + hold, max_delay)
        until = self._clock() + nap
        while self.store.news.count == seen and self._clock() < until:
            self._nap(until - self._clock(), seen)

    def _wait_for(self, cost: Cost, turn: Turn, start: float, max_delay: float | None) -> bool:
        """Sleep until the turn, moved by pauses as news of them comes; False: reserve again."""
        incarnation = getattr(turn, "incarnation", self.store.news.incarnation)
        deadline, shift = self._clock() + turn.wait, turn.shift
        try:
            while True:
                seen, known = self.store.news.count, self.store.news.shift_of(incarnation)
                if known is None or known <= shift:
                    delay = deadline - self._clock()
                    if delay > 0:
                        self._nap(delay, seen)
                        continue
                    if known == shift and self.store.hearing():
                        # No pause since the turn was given, or we would have heard: admitted
                        # without a round trip (the next reservation uncounts the waiter).
                        self.store.admitted_unclaimed(incarnation)
                        return True
                    known = self.store.claim(shift, incarnation)
                    if known is None:
                        return False  # reserved in a state that is gone
                    if known == shift:
                        return True
                deadline, shift = deadline + known - shift, known
                if max_delay is not None and deadline - start > max_delay:
                    raise bucket.delay_exceeded(deadline - start, max_delay)
        except BaseException:
            self.store.cancel(cost, incarnation)
            raise


def _left(max_delay: float | None, waited: float) -> float | None:
    return None if max_delay is None else max_delay - waited
