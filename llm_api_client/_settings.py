"""What each numeric setting may be, checked the same way by ``APIClient`` and the command line.

A ``Number`` rule says what is wrong with a value, or nothing. The client raises that as a
``ConfigurationError`` when it is made (or when a batch is started); the command line reports it as
an argparse error (exit status 2, no traceback). Infinity and NaN are never numbers here: where a
setting can be unlimited, ``None`` says so.

    >>> PER_MINUTE.problem(0.5)
    'a number >= 1 (None: unlimited)'
    >>> PROCESSES.problem(2) is None
    True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = [
    "BATCH_TIMEOUT",
    "CLIENT_RULES",
    "MAX_COST",
    "MAX_DELAY",
    "PER_MINUTE",
    "POSITIVE_SECONDS",
    "PROCESSES",
    "RETRIES",
    "WORKERS",
    "Number",
    "check",
]


@dataclass(frozen=True)
class Number:
    """A finite int (``integer``) or real number from ``minimum`` (excluded if ``exclusive``) up to
    ``maximum``.

    ``unset`` is what ``None`` means for this setting; ``None`` is refused when it is empty.
    Booleans are refused: ``processes=True`` is a mistake, not one process.
    """

    integer: bool = False
    minimum: float = 0
    exclusive: bool = False
    maximum: float = math.inf
    unset: str = ""

    def problem(self, value: object) -> str | None:
        """``None`` when ``value`` is allowed, else what it must be (for the error message)."""
        if value is None and self.unset:
            return None
        if self.allows(value):
            return None
        return self.describe() + (f" (None: {self.unset})" if self.unset else "")

    def allows(self, value: object) -> bool:
        """Whether ``value`` is a number this rule accepts (``None`` is not a number)."""
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            return False
        try:
            as_float = float(value)
        except OverflowError:  # an int beyond any float: no setting is that large
            return False
        return math.isfinite(as_float) and self._in_range(as_float)

    def _in_range(self, value: float) -> bool:
        above = value > self.minimum if self.exclusive else value >= self.minimum
        return above and value <= self.maximum

    def describe(self) -> str:
        """What a number must be: ``"an integer >= 0"``, ``"a number > 0 and <= 1"``."""
        kind = "an integer" if self.integer else "a number"
        bound = f"{'>' if self.exclusive else '>='} {self.minimum:g}"
        if self.maximum < math.inf:
            bound += f" and <= {self.maximum:g}"
        return f"{kind} {bound}"


# A per-minute limit below one request or one token can never admit anything.
PER_MINUTE = Number(minimum=1, unset="unlimited")
WORKERS = Number(integer=True, minimum=1, unset="automatic")
PROCESSES = Number(integer=True, minimum=0, unset="automatic")
RETRIES = Number(integer=True, minimum=0)
POSITIVE_SECONDS = Number(minimum=0, exclusive=True)
MAX_DELAY = Number(minimum=0, exclusive=True, unset="wait as long as needed")
BATCH_TIMEOUT = Number(minimum=0, exclusive=True, unset="no timeout")
MAX_COST = Number(minimum=0, exclusive=True, unset="no cap")

# What each setting of ``APIClient`` and each per-call argument may be.
CLIENT_RULES = {
    "max_requests_per_minute": PER_MINUTE,
    "max_tokens_per_minute": PER_MINUTE,
    "input_tokens_per_minute": PER_MINUTE,
    "output_tokens_per_minute": PER_MINUTE,
    "max_workers": WORKERS,
    "max_delay_seconds": MAX_DELAY,
    "burst_seconds": POSITIVE_SECONDS,
    "max_cost": MAX_COST,
    "processes": PROCESSES,
    "max_retries": RETRIES,
    "timeout": BATCH_TIMEOUT,
}


def check(**settings: object) -> None:
    """Raise ``ConfigurationError`` for the first setting its rule (``CLIENT_RULES``) refuses."""
    from llm_api_client.errors import ConfigurationError

    for name, value in settings.items():
        problem = CLIENT_RULES[name].problem(value)
        if problem is not None:
            raise ConfigurationError(f"{name} must be {problem}, not {value!r}")
