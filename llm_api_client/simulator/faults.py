"""Faults on demand: latency with jitter, error statuses, dropped and hung connections.

Two ways to get a fault:

* by chance: ``fail_rate``, ``drop_rate`` and ``hang_rate`` are probabilities drawn per admitted
  request from a seeded RNG, so one seed replays the same sequence of faults;
* by marker: a marker in the last user message forces a fault on exactly that request, so tests
  can target one request among many. Markers: ``#fail=<status>`` (answer that status with an
  OpenAI error body), ``#hang`` (never answer), ``#drop`` (close the connection, no answer).

A marker takes precedence over chance and draws nothing from the RNG.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FAIL = "fail"
DROP = "drop"
HANG = "hang"

_MARKER = re.compile(r"#(?:fail=(\d{3})|(hang)|(drop))\b")


@dataclass(frozen=True)
class Fault:
    """What to do instead of answering normally; ``status`` only for ``kind == FAIL``."""

    kind: str
    status: int = 500

    @property
    def stats_key(self) -> str:
        return f"http_{self.status}" if self.kind == FAIL else self.kind


def parse_marker(text: str) -> Fault | None:
    """The fault a ``#fail=<status>``, ``#hang`` or ``#drop`` marker in ``text`` asks for."""
    if "#" not in text:  # the common case, without a regex search
        return None
    match = _MARKER.search(text)
    if match is None:
        return None
    status, hang, _drop = match.groups()
    if status is not None:
        return Fault(FAIL, int(status))
    return Fault(HANG) if hang else Fault(DROP)


class FaultInjector:
    """Chooses each request's fault and latency from seeded RNGs.

    Latency draws from its own RNG so that changing the latency settings does not change which
    requests fail.
    """

    def __init__(
        self,
        *,
        fail_rate: float = 0.0,
        drop_rate: float = 0.0,
        hang_rate: float = 0.0,
        fail_status: int = 500,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int | None = None,
    ) -> None:
        for name, rate in (
            ("fail_rate", fail_rate),
            ("drop_rate", drop_rate),
            ("hang_rate", hang_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if fail_rate + drop_rate + hang_rate > 1.0:
            raise ValueError("fail_rate + drop_rate + hang_rate must not exceed 1")
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must not be negative")
        # Cumulative thresholds for one uniform draw: [drop | hang | fail | none].
        self._thresholds = (
            (drop_rate, Fault(DROP)),
            (drop_rate + hang_rate, Fault(HANG)),
            (drop_rate + hang_rate + fail_rate, Fault(FAIL, fail_status)),
        )
        self._any_rate = fail_rate + drop_rate + hang_rate > 0
        self._latency = latency_ms / 1000.0
        self._jitter = jitter_ms / 1000.0
        self._seed = seed
        self._faults_rng = random.Random(seed)
        self._latency_rng = random.Random(None if seed is None else seed + 1)

    def choose(self, text: str) -> Fault | None:
        """The fault for a request whose last user message is ``text``; None to answer."""
        forced = parse_marker(text)
        if forced is not None or not self._any_rate:
            return forced
        draw = self._faults_rng.random()
        for threshold, fault in self._thresholds:
            if draw < threshold:
                return fault
        return None

    def latency(self) -> float:
        """Seconds to wait before answering: the base latency plus uniform jitter, at least 0."""
        if not self._jitter:
            return self._latency
        return max(0.0, self._latency + self._latency_rng.uniform(-self._jitter, self._jitter))

    def reseed(self) -> None:
        """Restart both RNG sequences (on ``/reset``) so a seeded run replays from the start."""
        self._faults_rng.seed(self._seed)
        self._latency_rng.seed(None if self._seed is None else self._seed + 1)
