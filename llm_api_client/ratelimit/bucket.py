"""Token-bucket arithmetic on a flat array of floats; the caller passes the time and holds the lock.

Every backend keeps its whole state in one array of float64 slots (a ``list`` in one process, a
``memoryview`` over shared memory across processes), so the same functions serve both and the
shared-memory layout below is the only one there is.

Each bucket is kept in GCRA form ("generic cell rate algorithm"): its refill ``rate`` per second,
its ``capacity`` and its theoretical arrival time ``tat``, the moment at which the bucket would be
full again. Its level at time ``now`` is ``capacity - rate * max(0, tat - now)``; a negative level
means tokens reserved ahead by callers still sleeping until their turn. Storing a time instead of
a level lets a reservation for the future be exact: the tokens a request takes are taken at its
admission time, when every bucket has refilled up to (never beyond) its capacity.

Admission: a cost ``c`` is admitted by a bucket once its level reaches ``min(c, capacity)``. A
request larger than the burst therefore starts when the bucket is full and leaves it in debt,
which later requests wait out; in any window the admitted cost is at most
``max(capacity, largest cost) + rate * window``. Callers are served in the order they reserve
(first come, first served), so a large request is never starved by small ones.

Layout (float64 slots, native byte order; ``SLOTS`` in all)::

    0  LAYOUT        layout version (LAYOUT_VERSION), written last when the state is created
    1  PAUSED_UNTIL  clock time until which nothing is admitted (a 429 said wait); 0 = never
    2  PAUSES        how many times ``pause`` was called
    3  WAITERS       callers sleeping until their admission time
    4  ADMITTED      acquisitions admitted so far
    5  SHIFT         total seconds the schedule was pushed back by pauses (waiters add it)
    6  PROBE_UNTIL   slow start: inf = armed, t = others wait until t (or news), 0 = off
    7  PROBE_SECONDS how long the first request may keep the others waiting
    8 + 4*i + 0  RATE      bucket i's refill per second; 0 = unlimited (bucket off)
    8 + 4*i + 1  CAPACITY  bucket i's burst, in its unit (requests or tokens)
    8 + 4*i + 2  TAT       bucket i's theoretical arrival time (clock time)
    8 + 4*i + 3  LEARNED   the per-minute limit a provider's header set; 0 = none

with buckets ``i`` = 0 requests, 1 tokens, 2 input_tokens, 3 output_tokens (``BUCKETS``).
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence

from llm_api_client._constants import MIN_REQUEST_BUCKET_CAPACITY
from llm_api_client.errors import (
    ConfigurationError,
    RateLimitDelayExceeded,
    RequestTooLargeError,
)
from llm_api_client.ratelimit.base import Cost, Limits

State = MutableSequence[float]
Costs = tuple[float, float, float, float]

BUCKETS = ("requests", "tokens", "input_tokens", "output_tokens")
LAYOUT_VERSION = 1.0
LAYOUT, PAUSED_UNTIL, PAUSES, WAITERS, ADMITTED, SHIFT, PROBE_UNTIL, PROBE_SECONDS = range(8)
HEADER_SLOTS = 8
FIELDS = 4
RATE, CAPACITY, TAT, LEARNED = range(FIELDS)
SLOTS = HEADER_SLOTS + FIELDS * len(BUCKETS)
_BASES = tuple(HEADER_SLOTS + FIELDS * i for i in range(len(BUCKETS)))
# Waits shorter than this are rounding (clock times near 1e6 s carry about 1e-10 s of error).
_TIME_EPSILON = 1e-9
# A cost may exceed a per-minute limit by this relative margin (float rounding of rate * 60).
_PER_MINUTE_WITH_TOLERANCE = 60.0 * (1 + 1e-9)


def configured_limits(limits: Limits) -> tuple[float | None, ...]:
    """The per-minute limit of each bucket, in ``BUCKETS`` order, after checking it is possible."""
    values = (
        limits.requests_per_minute,
        limits.tokens_per_minute,
        limits.input_tokens_per_minute,
        limits.output_tokens_per_minute,
    )
    for name, value in zip(BUCKETS, values, strict=True):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigurationError(f"{name}_per_minute must be a positive number, got {value!r}")
    if not (math.isfinite(limits.burst_seconds) and limits.burst_seconds > 0):
        raise ConfigurationError(f"burst_seconds must be positive, got {limits.burst_seconds!r}")
    return values


def capacity_for(index: int, per_minute: float, burst_seconds: float) -> float:
    """A bucket's burst: ``burst_seconds`` of its limit, and never less than one whole request."""
    capacity = per_minute / 60.0 * burst_seconds
    if BUCKETS[index] == "requests":
        # Below one request, a request admitted on a partial level could reach a provider whose
        # own bucket has not yet refilled a whole one (see the debt rule in the module doc).
        capacity = max(capacity, MIN_REQUEST_BUCKET_CAPACITY)
    return capacity


def initial_state(limits: Limits, now: float, probe_seconds: float = 0.0) -> list[float]:
    """A new state with every configured bucket full at ``now``; ``probe_seconds``: slow start."""
    if not (math.isfinite(probe_seconds) and probe_seconds >= 0):
        raise ConfigurationError(f"probe_seconds must be >= 0, got {probe_seconds!r}")
    state = [0.0] * SLOTS
    if probe_seconds > 0:
        state[PROBE_UNTIL] = math.inf
        state[PROBE_SECONDS] = probe_seconds
    for index, per_minute in enumerate(configured_limits(limits)):
        if per_minute is not None:
            base = _BASES[index]
            state[base + RATE] = per_minute / 60.0
            state[base + CAPACITY] = capacity_for(index, per_minute, limits.burst_seconds)
            state[base + TAT] = now
    state[LAYOUT] = LAYOUT_VERSION
    return state


def costs_of(cost: Cost) -> Costs:
    """A cost as one amount per bucket, in ``BUCKETS`` order."""
    return (cost.requests, cost.input_tokens + cost.output_tokens, cost.input_tokens,
            cost.output_tokens)  # fmt: skip


def reserve(state: State, costs: Costs, now: float, max_delay: float | None) -> float:
    """Take ``costs`` from every bucket at its admission time and return that time.

    Raises ``RequestTooLargeError`` when a cost exceeds a bucket's per-minute limit and
    ``RateLimitDelayExceeded`` when admission is more than ``max_delay`` after ``now``; in both
    cases nothing is taken.
    """
    # The hot path of every request: plain comparisons instead of min/max calls, each slot read
    # once, and the second pass only over the buckets this cost uses.
    at = state[PAUSED_UNTIL]
    if at < now:
        at = now
    used = []
    for base, cost in zip(_BASES, costs, strict=True):
        if cost > 0:
            rate = state[base + RATE]
            if rate > 0:
                if cost > rate * _PER_MINUTE_WITH_TOLERANCE:
                    raise _too_large(_BASES.index(base), cost, rate)
                spare = state[base + CAPACITY] - cost  # a cost above the burst needs a full bucket
                turn = state[base + TAT] - (spare if spare > 0 else 0.0) / rate
                if turn > at:
                    at = turn
                used.append((base + TAT, cost / rate))
    if at - now < _TIME_EPSILON:
        at = now  # float rounding of summed 1/rate steps, not a real wait
    elif max_delay is not None and at - now > max_delay:
        raise delay_exceeded(at - now, max_delay)
    for slot, seconds in used:
        tat = state[slot]
        state[slot] = (tat if tat > at else at) + seconds
    state[ADMITTED] += 1
    return at


def delay_exceeded(delay: float, max_delay: float) -> RateLimitDelayExceeded:
    return RateLimitDelayExceeded(
        f"admission would take {delay:.3f} s, more than max_delay_seconds={max_delay:g}",
        delay=delay,
        max_delay=max_delay,
    )


def _too_large(index: int, cost: float, rate: float) -> RequestTooLargeError:
    name = BUCKETS[index]
    return RequestTooLargeError(
        f"the request needs {cost:g} {name} but the limit is {rate * 60:g} {name} per minute",
        bucket=name,
        cost=cost,
        limit_per_minute=rate * 60.0,
    )


def give_back(state: State, costs: Costs, now: float) -> None:
    """Return ``costs`` to every bucket, never above its capacity."""
    now = max(now, state[PAUSED_UNTIL])
    for index, base in enumerate(_BASES):
        cost = costs[index]
        rate = state[base + RATE]
        if cost > 0 and rate > 0:
            state[base + TAT] = max(now, state[base + TAT] - cost / rate)


def level(state: State, index: int, now: float) -> float:
    """Bucket ``index``'s level at ``now`` (negative: reserved ahead); ``inf`` when unlimited.

    During a pause the limiter's time stands still, so this is the level the pause will end with.
    """
    base = _BASES[index]
    rate = state[base + RATE]
    if rate <= 0:
        return math.inf
    now = max(now, state[PAUSED_UNTIL])
    return state[base + CAPACITY] - rate * max(0.0, state[base + TAT] - now)


def set_level(state: State, index: int, value: float, now: float) -> None:
    """Make bucket ``index`` hold ``value`` at ``now`` (clamped to its capacity)."""
    base = _BASES[index]
    capacity = state[base + CAPACITY]
    now = max(now, state[PAUSED_UNTIL])
    state[base + TAT] = now + (capacity - min(value, capacity)) / state[base + RATE]


def lower_level(state: State, index: int, remaining: float, now: float) -> None:
    """A provider says only ``remaining`` is left: the level becomes at most that."""
    usable = math.isfinite(remaining) and remaining >= 0
    if usable and state[_BASES[index] + RATE] > 0 and level(state, index, now) > remaining:
        set_level(state, index, remaining, now)


def learn_limit(
    state: State,
    index: int,
    per_minute: float,
    configured: float | None,
    burst_seconds: float,
    now: float,
) -> None:
    """A provider's per-minute limit: run at ``min(configured, per_minute)``.

    What was already spent (capacity - level) stays spent: the requests just sent count against
    the new, smaller bucket too, so a lowered limit does not let a second wave through.
    """
    if not (math.isfinite(per_minute) and per_minute > 0):
        return
    base = _BASES[index]
    target = per_minute if configured is None else min(per_minute, configured)
    if target / 60.0 == state[base + RATE]:
        return
    current = level(state, index, now)
    spent = state[base + CAPACITY] - current if math.isfinite(current) else 0.0  # 0: was off
    state[base + RATE] = target / 60.0
    state[base + CAPACITY] = capacity_for(index, target, burst_seconds)
    state[base + LEARNED] = target if configured is None or target < configured else 0.0
    set_level(state, index, state[base + CAPACITY] - spent, now)


def probe_hold(state: State, now: float) -> float:
    """Seconds a caller must hold back because the first request is still probing; 0 to go on.

    Slow start: until the provider has answered once (``heard``), limits configured far above
    the provider's would let a whole first wave of threads through to draw 429s. So the first
    request goes alone and the others wait for its answer, at most ``PROBE_SECONDS``.
    """
    until = state[PROBE_UNTIL]
    if until == math.inf:
        return 0.0
    if until <= now:
        heard(state)  # no answer in time: give up waiting for one
        return 0.0
    return until - now


def start_probe(state: State, at: float) -> None:
    """The first request was admitted at ``at``: the others wait for its answer from now on."""
    if state[PROBE_UNTIL] == math.inf:
        state[PROBE_UNTIL] = at + state[PROBE_SECONDS]


def heard(state: State) -> None:
    """The provider answered: slow start is over."""
    state[PROBE_UNTIL] = 0.0


def pause(state: State, seconds: float, now: float) -> None:
    """Admit nothing until ``now + seconds``; the limiter's time stands still meanwhile.

    Reservations not yet reached and every bucket's schedule move back by however much the pause
    was extended, so when it ends callers resume at the paced rate instead of all at once.
    """
    state[PAUSES] += 1
    if not (math.isfinite(seconds) and seconds > 0):
        return
    start = max(now, state[PAUSED_UNTIL])
    extension = now + seconds - start
    if extension <= 0:
        return
    state[PAUSED_UNTIL] = now + seconds
    state[SHIFT] += extension
    for base in _BASES:
        if state[base + RATE] > 0:
            state[base + TAT] = max(state[base + TAT], start) + extension
