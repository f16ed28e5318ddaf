"""Every target a run is expected to meet, judged on its rows: met, NOT met, or no measurement.

The expected targets come from the sections chosen and the full plan, never from the rows that
happen to exist: a target whose row is missing (the seed unavailable, a variant ``--quick``
skips) or errored is "NOT met (no measurement)", with the reason, instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from macrobench import ratelimit
from macrobench.plan import BARE, FULL, SEED, lean, ours
from macrobench.throughput import ratio

Row = dict[str, Any]

# The targets of issues 3 and 5.
SEED_SPEEDUP = 1.8  # ours (all processes) >= 1.8x the seed's req/s at the same concurrency
CPU_OVER_BARE = 1.15  # ours' CPU per request <= 1.15x a bare thread pool's
TWO_OVER_ONE = 1.3  # 2 processes >= 1.3x the req/s of 1
# Issue 17: at 0 ms latency, the default (lean) transport at processes=0 spends <= 0.2x the CPU
# per request of a bare litellm pool.
LEAN_CPU_OVER_BARE = 0.2
MAX_SHARE_429 = 0.005  # at most 0.5% of requests answered 429 at the limit
MIN_SHARE_OF_LIMIT = 0.94  # at least 94% of the limit's throughput, steady part
# "Memory does not grow with the batch": the allowance of bench_run_memory.py.
STREAM_RSS_GROWTH = 1.15


@dataclass(frozen=True)
class Verdict:
    target: str
    met: bool
    figure: str  # the measured figure; without a measurement, why there is none
    measured: bool = True

    @property
    def status(self) -> str:
        if not self.measured:
            return "NOT met (no measurement)"
        return "met" if self.met else "NOT met"

    def line(self) -> str:
        return f"{self.status:<8} {self.target}: {self.figure}"


def unmeasured(target: str, why: str) -> Verdict:
    return Verdict(target, False, why, measured=False)


def judge(rows: list[Row], sections: Iterable[str]) -> list[Verdict]:
    """The verdicts of every target of ``sections``, then of every batch's check."""
    chosen = set(sections)
    out = []
    if "throughput" in chosen:
        out += throughput_verdicts(_of(rows, "throughput"))
    if "ratelimit" in chosen:
        out += ratelimit_verdicts(_of(rows, "ratelimit"))
    if "stream" in chosen:
        out += stream_verdicts(_of(rows, "stream"))
    return [*out, correctness_verdict(rows)]


def exit_status(verdicts: list[Verdict], *, quick: bool) -> int:
    """1 when any target is not met, except in a quick run, which only reports."""
    return 0 if quick or all(v.met for v in verdicts) else 1


def _of(rows: list[Row], section: str) -> list[Row]:
    return [r for r in rows if r["section"] == section]


def missing(row: Row | None, label: str) -> str | None:
    """Why ``row`` holds no measurement, or None when it does."""
    if row is None:
        return f"no row for {label}"
    if "error" in row:
        return f"{label}: {row['error']}"
    return None


# -- throughput ---------------------------------------------------------------------------


def throughput_verdicts(rows: list[Row]) -> list[Verdict]:
    out = []
    for latency in FULL.latencies:
        here = {r["variant"]: r for r in rows if r["latency_ms"] == latency}
        found = _one_latency(here)
        if latency == 0:
            found.append(_lean(here))
        out += [replace(v, target=f"{latency} ms: {v.target}") for v in found]
    return out


def _lean(here: dict[str, Row]) -> Verdict:
    target = f"{lean(0)} CPU/req <= {LEAN_CPU_OVER_BARE}x bare"
    cheap = _at_most(LEAN_CPU_OVER_BARE)
    return _ratio(target, here, lean(0), BARE, "cpu_ms_per_request", cheap)


def _one_latency(here: dict[str, Row]) -> list[Verdict]:
    top = ours(max(FULL.processes))
    target = f"{top} >= {SEED_SPEEDUP}x seed req/s"
    out = [_ratio(target, here, top, SEED, "rps", _at_least(SEED_SPEEDUP))]
    cpu, leaner = "cpu_ms_per_request", _at_most(CPU_OVER_BARE)
    for p in FULL.processes:
        target = f"{ours(p)} CPU/req <= {CPU_OVER_BARE}x bare"
        out.append(_ratio(target, here, ours(p), BARE, cpu, leaner))
    target = f"2 processes >= {TWO_OVER_ONE}x 1 process"
    return [*out, _ratio(target, here, ours(2), ours(1), "rps", _at_least(TWO_OVER_ONE))]


def _ratio(
    target: str, here: dict[str, Row], a: str, b: str, key: str, passes: Callable[[float], bool]
) -> Verdict:
    why = missing(here.get(a), a) or missing(here.get(b), b)
    x = ratio(here.get(a), here.get(b), key)
    if why or x is None:
        return unmeasured(target, why or f"no {key}")
    return Verdict(target, passes(x), f"{x:.2f}x")


def _at_least(bound: float) -> Callable[[float], bool]:
    return lambda x: x >= bound


def _at_most(bound: float) -> Callable[[float], bool]:
    return lambda x: x <= bound


# -- rate limits --------------------------------------------------------------------------


def ratelimit_verdicts(rows: list[Row]) -> list[Verdict]:
    label = ours(ratelimit.OURS_PROCESSES)
    out = []
    for case in ratelimit.CASES:
        row = next((r for r in rows if r["case"] == case.name and r["variant"] == label), None)
        targets = (
            f"{case.name}: <= {100 * MAX_SHARE_429:.1f}% of requests answered 429",
            f"{case.name}: >= {100 * MIN_SHARE_OF_LIMIT:.0f}% of the limit's throughput",
            f"{case.name}: every request answered",
        )
        why = missing(row, label)
        if why or row is None:
            out += [unmeasured(t, why or "") for t in targets]
            continue
        out += [_share_429(targets[0], row), _share_of_limit(targets[1], row)]
        out.append(_answered(targets[2], row))
    return out


def _share_429(target: str, row: Row) -> Verdict:
    share = row["share_429"]
    return Verdict(target, share <= MAX_SHARE_429, f"{100 * share:.2f}%")


def _share_of_limit(target: str, row: Row) -> Verdict:
    share = row["steady_share"]
    if share is None:
        return unmeasured(target, "fewer than 3 seconds of admissions, none of them steady")
    return Verdict(target, share >= MIN_SHARE_OF_LIMIT, f"{100 * share:.1f}%")


def _answered(target: str, row: Row) -> Verdict:
    """Failures of any kind count, not only 429s: a request that failed lowers no 429 share."""
    figure = f"{row['answered']}/{row['requests']}"
    failures = row.get("failures") or {}
    if failures:
        figure += "; failed: " + ", ".join(f"{k} x{v['count']}" for k, v in failures.items())
    return Verdict(target, row["answered"] == row["requests"], figure)


# -- streaming ----------------------------------------------------------------------------


def stream_verdicts(rows: list[Row]) -> list[Verdict]:
    small, large = (f"stream {n:,}" for n in (min(FULL.stream_sizes), max(FULL.stream_sizes)))
    here = {f"stream {r['requests']:,}": r for r in rows}
    target = f"{large} peak RSS <= {STREAM_RSS_GROWTH}x {small}'s"
    return [_ratio(target, here, large, small, "peak_rss_mb", _at_most(STREAM_RSS_GROWTH))]


# -- every batch --------------------------------------------------------------------------


def correctness_verdict(rows: list[Row]) -> Verdict:
    """This library's batches only: the bare pool's are shown, not judged (a plain litellm
    pool loses an answer now and then, see providers.http_pool)."""
    target = "every response echoes its request; tracker totals = simulator's; all answered"
    mine = [r for r in rows if r.get("kind") == "ours"]
    if not mine:
        return unmeasured(target, "no batch of this library ran")
    bad = [r for r in mine if "error" in r or not r["check"]["ok"]]
    figure = f"{len(mine) - len(bad)}/{len(mine)} batches of this library"
    if bad:
        figure += "; not: " + ", ".join(describe(r) for r in bad)
    return Verdict(target, not bad, figure)


def describe(row: Row) -> str:
    """A row's name in one line: its section's key and its variant."""
    if row["section"] == "throughput":
        return f"{row['latency_ms']} ms {row['variant']}"
    if row["section"] == "ratelimit":
        return f"{row['case']} {row['variant']}"
    return f"stream {row['requests']:,}"


def notes(rows: list[Row]) -> list[str]:
    """Figures shown but not judged."""
    bare = [r for r in rows if r.get("kind") == "bare"]
    if not bare:
        return []
    lost = sum("error" in r or not r["check"]["ok"] for r in bare)
    return [f"(info) bare pool batches with a problem: {lost}/{len(bare)}"]
