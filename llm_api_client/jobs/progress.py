"""A progress reporter fed by results: a tqdm bar on stderr, or silence in quiet mode.

Shows done/total, achieved requests/min and tokens/min, cost so far beside the projected
total cost of the run, and the ETA::

    with Progress(total=len(requests)) as progress:
        for result in client.stream(requests):
            progress.update(result)
    print(progress.summary())

The bar's rates cover the last minute (so a slow start, such as worker processes importing
litellm, fades out); ``summary()`` reports whole-run rates. Tokens and cost come from the results'
usage records; the clock is injected so tests need not sleep. The projected total extrapolates
the mean cost of the rows this run finished to the rows it has left (``$0.0120 of ~$0.4800``).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["Progress", "RateWindow", "format_duration", "format_usd"]

# Rebuild the bar's postfix (rates, cost) at most this often: formatting it on every result
# costs more than the bar itself at thousands of results per second.
POSTFIX_INTERVAL_SECONDS = 0.5
# The bar's achieved rates are measured over this many recent seconds: a per-minute limit is what
# they are compared with.
RATE_WINDOW_SECONDS = 60.0

_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
)
_BAR_FORMAT_NO_TOTAL = "{desc}: {n_fmt} [{elapsed}{postfix}]"


class RateWindow:
    """Requests and tokens per whole second over the last ``seconds``: at most that many buckets."""

    def __init__(self, seconds: float = RATE_WINDOW_SECONDS) -> None:
        self.seconds = seconds
        self._buckets: deque[list[float]] = deque()  # [second, requests, tokens]

    def add(self, now: float, tokens: int) -> None:
        second = float(int(now))
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
            self._buckets[-1][2] += tokens
        else:
            self._buckets.append([second, 1, tokens])
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.seconds - 1:
            self._buckets.popleft()

    def per_minute(self, now: float) -> tuple[float, float]:
        """(requests/min, tokens/min) over the window; over at least one second."""
        self._trim(now)
        if not self._buckets:
            return 0.0, 0.0
        span = max(min(now - self._buckets[0][0], self.seconds + 1), 1.0)
        requests = sum(bucket[1] for bucket in self._buckets)
        tokens = sum(bucket[2] for bucket in self._buckets)
        return requests * 60.0 / span, tokens * 60.0 / span


class Progress:
    """Count results and show them; ``total`` may be ``None`` when unknown.

    ``initial`` rows count as already done (resumed work) without entering the rates or ETA.
    ``update(result)`` takes a ``llm_api_client.records.Result``; ``advance()`` counts a row that
    settled without one (a malformed input line), ``skip()`` removes a row from the total (a
    blank or duplicate line). ``quiet=True`` shows nothing but still counts, for ``summary()``.
    """

    def __init__(
        self,
        total: int | None,
        quiet: bool = False,
        *,
        initial: int = 0,
        file: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        description: str = "requests",
    ) -> None:
        self.succeeded = 0
        self.failed = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self._clock = clock
        self._started = clock()
        self._postfix_at = float("-inf")
        self._window = RateWindow()
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=description,
            unit="req",
            bar_format=_BAR_FORMAT if total is not None else _BAR_FORMAT_NO_TOTAL,
            file=file if file is not None else sys.stderr,
            disable=quiet,
            dynamic_ncols=True,
            smoothing=0.05,
        )

    # -- feeding ------------------------------------------------------------------------

    def update(self, result: Any) -> None:
        """Count one finished request (a ``Result``): success or failure, tokens and cost."""
        usage = getattr(result, "usage", None)
        tokens = 0
        if usage is not None:
            tokens = usage.prompt_tokens + usage.completion_tokens
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.cost += usage.cost
        self._count(ok=bool(getattr(result, "ok", False)), tokens=tokens)

    def advance(self, n: int = 1, *, failed: bool = True) -> None:
        """Count ``n`` rows that settled without a result (e.g. malformed input lines)."""
        for _ in range(n):
            self._count(ok=not failed)

    def skip(self, n: int = 1) -> None:
        """Remove ``n`` rows from the total: they will never be sent (blank or duplicate lines)."""
        if self._bar.total is not None:
            self._bar.total = max(self._bar.n, self._bar.total - n)

    def _count(self, *, ok: bool, tokens: int = 0) -> None:
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
        now = self._clock()
        self._window.add(now, tokens)
        if now - self._postfix_at >= POSTFIX_INTERVAL_SECONDS:
            self._postfix_at = now
            self._bar.set_postfix_str(self._postfix(), refresh=False)
        self._bar.update(1)

    # -- reading ------------------------------------------------------------------------

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def elapsed(self) -> float:
        return max(self._clock() - self._started, 1e-9)

    @property
    def requests_per_minute(self) -> float:
        """Over the whole run (the bar shows the last minute's rate)."""
        return self.done * 60.0 / self.elapsed

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens * 60.0 / self.elapsed

    def _rates(self) -> str:
        return f"{self.requests_per_minute:,.0f} req/min, {self.tokens_per_minute:,.0f} tok/min"

    def _postfix(self) -> str:
        requests, tokens = self._window.per_minute(self._clock())
        failed = f", {self.failed:,} failed" if self.failed else ""
        return f"{requests:,.0f} req/min, {tokens:,.0f} tok/min, {self._cost_text()}{failed}"

    def _cost_text(self) -> str:
        projected = self.projected_cost
        of = f" of ~${projected:,.4f}" if projected is not None else ""
        return f"${self.cost:,.4f}{of}"

    @property
    def projected_cost(self) -> float | None:
        """This run's cost if the rows left cost what the finished ones did on average; None
        until a row finished or when the total is unknown."""
        total = self._bar.total
        if total is None or not self.done:
            return None
        left = max(0, total - self._bar.n)
        return self.cost + self.cost / self.done * left

    def summary(self) -> str:
        """One line: what was done, how fast, for how much."""
        return (
            f"{self.done:,} requests ({self.succeeded:,} ok, {self.failed:,} failed) in "
            f"{format_duration(self.elapsed)}: {self._rates()}, ${self.cost:,.4f}"
        )

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        self._bar.set_postfix_str(self._postfix(), refresh=False)
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        total = self._bar.total if self._bar.total is not None else "?"
        return (
            f"Progress(done={self.done}/{total}, failed={self.failed}, "
            f"tokens={self.tokens}, cost=${self.cost:.4f})"
        )


def format_duration(seconds: float) -> str:
    """``75.3`` -> ``'1m15s'``; ``3725`` -> ``'1h02m05s'``; ``4.2`` -> ``'4.2s'``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_usd(amount: float) -> str:
    """``10.0`` -> ``$10``; ``0.00005`` -> ``$0.00005`` (not ``$5e-05``)."""
    return "$" + f"{amount:,.6f}".rstrip("0").rstrip(".")
