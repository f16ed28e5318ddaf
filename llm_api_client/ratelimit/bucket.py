"""Token-bucket arithmetic: pure functions over a flat array of floats and the store's ``now``.

This is the only place the arithmetic lives. Each ``QuotaStore`` operation is one function here
(``take_turn``, ``claim_turn``, ``cancel_turn``, ``give_back``, ``pause``, ``learn``,
``snapshot``), which a store calls inside its own atomicity (a lock; a Lua script for a network
store) with its own clock. Times stay inside the state; what a function returns is a duration or
a count, so the caller needs no clock in common with the store.

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
(first come, first served), so a large request is never starved by small ones. A cost above a
bucket's per-minute ``limit`` can never be admitted and is refused at once.

Layout (float64 slots, native byte order; ``SLOTS`` in all)::

    0  LAYOUT        layout version (LAYOUT_VERSION), written last when the state is created
    1  PAUSED_UNTIL  time until which nothing is admitted (a 429 said wait); 0 = never
    2  PAUSES        how many times ``pause`` was called
    3  WAITERS       callers sleeping until their admission time
    4  ADMITTED      acquisitions admitted so far
    5  SHIFT         total seconds the schedule was pushed back by pauses (waiters add it)
    6  PROBE_UNTIL   slow start: inf = armed, t = others wait until t (or news), 0 = off
    7  PROBE_SECONDS how long the first request may keep the others waiting
    8  EPISODES      429 episodes: 429s of requests admitted after the previous episode began
    9  BURST_SECONDS seconds of its rate each bucket holds
    10 + 5*i + 0  RATE        bucket i's refill per second (its pace); 0 = unlimited (bucket off)
    10 + 5*i + 1  CAPACITY    bucket i's burst, in its unit (requests or tokens)
    10 + 5*i + 2  TAT         bucket i's theoretical arrival time
    10 + 5*i + 3  LIMIT       bucket i's per-minute limit: configured, or a provider's lower one
    10 + 5*i + 4  CONFIGURED  bucket i's configured per-minute limit; 0 = none

with buckets ``i`` = 0 requests, 1 tokens, 2 input_tokens, 3 output_tokens (``BUCKETS``). The pace
is the limit, or less after repeated 429s that came with no limit to learn.
"""

from __future__ import annotations

import functools
import math
from collections.abc import MutableSequence

from llm_api_client._constants import (
    LOW_LIMIT_PACE,
    LOW_LIMIT_PER_MINUTE,
    MIN_REQUEST_BUCKET_CAPACITY,
    RATE_DECREASE_ON_REPEATED_429,
    REPEATED_429_SECONDS,
)
from llm_api_client.errors import (
    ConfigurationError,
    RateLimitDelayExceeded,
    RequestTooLargeError,
)
from llm_api_client.ratelimit.base import Cost, LimiterSnapshot, Limits, ProviderLimits, Turn

State = MutableSequence[float]
Costs = tuple[float, float, float, float]

BUCKETS = ("requests", "tokens", "input_tokens", "output_tokens")
LAYOUT_VERSION = 2.0
(LAYOUT, PAUSED_UNTIL, PAUSES, WAITERS, ADMITTED, SHIFT, PROBE_UNTIL, PROBE_SECONDS, EPISODES,
 BURST_SECONDS) = range(10)  # fmt: skip
HEADER_SLOTS = 10
FIELDS = 5
RATE, CAPACITY, TAT, LIMIT, CONFIGURED = range(FIELDS)
SLOTS = HEADER_SLOTS + FIELDS * len(BUCKETS)
_BASES = tuple(HEADER_SLOTS + FIELDS * i for i in range(len(BUCKETS)))
# Waits shorter than this are rounding (clock times near 1e6 s carry about 1e-10 s of error).
_TIME_EPSILON = 1e-9
# A cost may exceed a per-minute limit by this relative margin (float rounding).
_LIMIT_TOLERANCE = 1 + 1e-9


@functools.lru_cache(maxsize=64)
def _admitted_now(shift: float, episodes: float) -> Turn:
    """The answer to most reservations, the same until a 429 moves the schedule: made once.

    (Building a NamedTuple costs about a twentieth of an uncontended acquisition.)
    """
    return Turn(0.0, shift, int(episodes))


# --- creating a state ---------------------------------------------------------------------------


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


def initial_state(limits: Limits, now: float, probe_seconds: float = 0.0) -> list[float]:
    """A new state with every configured bucket full at ``now``; ``probe_seconds``: slow start."""
    if not (math.isfinite(probe_seconds) and probe_seconds >= 0):
        raise ConfigurationError(f"probe_seconds must be >= 0, got {probe_seconds!r}")
    state = [0.0] * SLOTS
    if probe_seconds > 0:
        state[PROBE_UNTIL] = math.inf
        state[PROBE_SECONDS] = probe_seconds
    state[BURST_SECONDS] = limits.burst_seconds
    for index, per_minute in enumerate(configured_limits(limits)):
        if per_minute is not None:
            state[_BASES[index] + CONFIGURED] = per_minute
            _set_limit(state, index, per_minute, now)
    state[LAYOUT] = LAYOUT_VERSION
    return state


def costs_of(cost: Cost) -> Costs:
    """A cost as one amount per bucket, in ``BUCKETS`` order."""
    return (cost.requests, cost.input_tokens + cost.output_tokens, cost.input_tokens,
            cost.output_tokens)  # fmt: skip


# --- reserve: take a cost for its turn ----------------------------------------------------------


def take_turn(state: State, costs: Costs, now: float, max_delay: float | None) -> Turn:
    """Reserve ``costs`` for their turn: admitted now (``wait`` 0) or in ``wait`` seconds.

    A caller told to wait is counted as a waiter until it claims or cancels its turn. Slow start
    may hold the caller instead: nothing is taken, and ``wait`` says how long the first request's
    answer may still be awaited. Raises as ``reserve`` does, taking nothing.
    """
    if state[PROBE_UNTIL]:
        hold = probe_hold(state, now)
        if hold:
            return Turn(hold, state[SHIFT], int(state[EPISODES]), held=True)
    at = reserve(state, costs, now, max_delay)
    if state[PROBE_UNTIL]:
        start_probe(state, at)
    if at > now:
        state[WAITERS] += 1
        return Turn(at - now, state[SHIFT], int(state[EPISODES]))
    return _admitted_now(state[SHIFT], state[EPISODES])


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
                if cost > state[base + LIMIT] * _LIMIT_TOLERANCE:
                    raise _too_large(_BASES.index(base), cost, state[base + LIMIT])
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


def _too_large(index: int, cost: float, per_minute: float) -> RequestTooLargeError:
    name = BUCKETS[index]
    return RequestTooLargeError(
        f"the request needs {cost:g} {name} but the limit is {per_minute:g} {name} per minute",
        bucket=name,
        cost=cost,
        limit_per_minute=per_minute,
    )


def claim_turn(state: State, shift: float) -> float:
    """A waiter whose turn has come claims it; returns the schedule's shift now.

    Equal to the waiter's ``shift``: no pause moved the turn, the waiter is admitted and no longer
    counted. Larger: pauses moved the turn back by the difference, to be slept first.
    """
    current = state[SHIFT]
    if current == shift:
        state[WAITERS] -= 1
    return current


def cancel_turn(state: State, costs: Costs, now: float) -> None:
    """A waiter gives up its turn (max_delay passed during a pause, or cancelled): cost back."""
    give_back(state, costs, now)
    state[WAITERS] -= 1


def give_back(state: State, costs: Costs, now: float) -> None:
    """Return ``costs`` to every bucket, never above its capacity."""
    now = max(now, state[PAUSED_UNTIL])
    for index, base in enumerate(_BASES):
        cost = costs[index]
        rate = state[base + RATE]
        if cost > 0 and rate > 0:
            state[base + TAT] = max(now, state[base + TAT] - cost / rate)


# --- levels and limits --------------------------------------------------------------------------


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


def capacity_for(index: int, per_minute: float, burst_seconds: float) -> float:
    """A bucket's burst: ``burst_seconds`` of its pace, and never less than one whole request."""
    capacity = per_minute / 60.0 * burst_seconds
    if BUCKETS[index] == "requests":
        # Below one request, a request admitted on a partial level could reach a provider whose
        # own bucket has not yet refilled a whole one (see the debt rule in the module doc).
        capacity = max(capacity, MIN_REQUEST_BUCKET_CAPACITY)
    return capacity


def learn_limit(state: State, index: int, per_minute: float, now: float) -> None:
    """A provider's per-minute limit: the bucket's limit and pace become ``min(configured, it)``.

    Only a change is news: a provider repeating the limit in force leaves a pace that repeated
    429s lowered under it where it is.
    """
    if not (math.isfinite(per_minute) and per_minute > 0):
        return
    base = _BASES[index]
    configured = state[base + CONFIGURED]
    target = min(per_minute, configured) if configured else per_minute
    if target != state[base + LIMIT]:
        state[base + LIMIT] = target
        _set_pace(state, index, learned_pace(index, target), now)


def learned_pace(index: int, per_minute: float) -> float:
    """The pace for a provider's limit: below ``LOW_LIMIT_PER_MINUTE`` requests, a margin less."""
    if index == 0 and per_minute < LOW_LIMIT_PER_MINUTE:
        return per_minute * LOW_LIMIT_PACE
    return per_minute


def slow_down(state: State, now: float) -> None:
    """Pace every limited bucket at ``RATE_DECREASE_ON_REPEATED_429`` of its rate; limits stay."""
    for index, base in enumerate(_BASES):
        if state[base + RATE] > 0:
            _set_pace(state, index, state[base + RATE] * 60.0 * RATE_DECREASE_ON_REPEATED_429, now)


def _set_limit(state: State, index: int, per_minute: float, now: float) -> None:
    state[_BASES[index] + LIMIT] = per_minute
    _set_pace(state, index, per_minute, now)


def _set_pace(state: State, index: int, per_minute: float, now: float) -> None:
    """Refill bucket ``index`` at ``per_minute``, its burst resized to match.

    What was already spent (capacity - level) stays spent: the requests just sent count against
    the new, smaller bucket too, so a lowered pace does not let a second wave through.
    """
    base = _BASES[index]
    current = level(state, index, now)
    spent = state[base + CAPACITY] - current if math.isfinite(current) else 0.0  # 0: was off
    state[base + RATE] = per_minute / 60.0
    state[base + CAPACITY] = capacity_for(index, per_minute, state[BURST_SECONDS])
    set_level(state, index, state[base + CAPACITY] - spent, now)


def learn(state: State, limits: ProviderLimits, now: float) -> None:
    """What a provider's answer said: its limits, then what remains; any answer ends slow start."""
    for name, per_minute in limits.limits.items():
        learn_limit(state, BUCKETS.index(name), per_minute, now)
    for name, left in limits.remaining.items():
        lower_level(state, BUCKETS.index(name), left, now)
    # Only now, with the provider's limits in place, may slow start's waiters go on.
    heard(state)


# --- slow start ---------------------------------------------------------------------------------


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


# --- 429s ---------------------------------------------------------------------------------------


def pause(state: State, seconds: float, now: float, episode: int | None = None) -> None:
    """A 429: admit nothing until ``now + seconds``; the limiter's time stands still meanwhile.

    Reservations not yet reached and every bucket's schedule move back by however much the pause
    was extended, so when it ends callers resume at the paced rate instead of all at once.
    ``episode`` is the rejected request's (``Turn.episode`` when it was admitted; None: unknown):
    a request admitted after the latest episode began starts a new one, and a new episode soon
    after the previous pause ended lowers the pace (``slow_down``).
    """
    state[PAUSES] += 1
    heard(state)
    if episode is not None and episode >= state[EPISODES]:
        repeated = state[EPISODES] > 0 and now - state[PAUSED_UNTIL] <= REPEATED_429_SECONDS
        state[EPISODES] += 1
        if repeated:
            slow_down(state, now)
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


# --- observing ----------------------------------------------------------------------------------


def snapshot(state: State, now: float) -> LimiterSnapshot:
    """A ``LimiterSnapshot`` of the state at ``now`` (call it on a copy, or under the lock)."""
    levels: dict[str, float] = {}
    rates: dict[str, float] = {}
    capacities: dict[str, float] = {}
    learned: dict[str, float] = {}
    for index, name in enumerate(BUCKETS):
        base = _BASES[index]
        if state[base + RATE] > 0:
            levels[name] = level(state, index, now)
            rates[name] = state[base + RATE] * 60.0
            capacities[name] = state[base + CAPACITY]
            configured = state[base + CONFIGURED]
            if not configured or rates[name] < configured / _LIMIT_TOLERANCE:
                learned[name] = rates[name]
    return LimiterSnapshot(
        levels=levels,
        rates_per_minute=rates,
        waiters=round(state[WAITERS]),
        paused_for=max(0.0, state[PAUSED_UNTIL] - now),
        pauses=round(state[PAUSES]),
        learned=learned,
        capacities=capacities,
        admitted=round(state[ADMITTED]),
        episodes=round(state[EPISODES]),
    )
