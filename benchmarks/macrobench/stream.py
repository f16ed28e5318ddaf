"""Section "stream": time to first result and the coordinator's peak RSS of streamed batches.

A generator of requests in, results counted and dropped, zero latency, no limits, the
library's defaults otherwise; one batch per size of ``plan.stream_sizes``.
"""

from __future__ import annotations

from typing import Any

from llm_api_client.simulator import Simulator
from macrobench import checks
from macrobench.plan import Plan
from macrobench.runner import Runner

VARIANT = "ours stream"
KIB_PER_MIB = 1024


def run(plan: Plan, runner: Runner) -> list[dict[str, Any]]:
    rows = []
    runner.log("streamed batches")
    with Simulator(process=True) as sim:
        for n in plan.stream_sizes:
            sim.reset()
            # Timeout: a minute to start, then a floor of 20 requests/s.
            result = runner.run(f"stream {n}", _spec(sim, n), timeout=60 + n / 20)
            stats = None if "error" in result else sim.stats()
            row = {"section": "stream", "variant": VARIANT, "kind": "ours"}
            rows.append(row | figures(n, result, stats))
    return rows


def _spec(sim: Simulator, n: int) -> dict[str, Any]:
    return {
        "mode": "stream",
        "kind": "ours",
        "sim": sim.url,
        "base_url": sim.base_url,
        "n": n,
        "concurrency": None,
        "processes": None,
        "rpm": None,
        "tpm": None,
        "max_tokens": 16,
    }


def figures(n: int, result: dict[str, Any], stats: dict[str, Any] | None) -> dict[str, Any]:
    """One row's figures from a streamed batch (or its error) and the simulator's stats."""
    if "error" in result or stats is None:
        return {"requests": n, "error": result.get("error", "no simulator stats")}
    return {
        "requests": n,
        "answered": result["ok"],
        "rps": n / result["wall"],
        "first_result_s": result["first_result"],
        "peak_rss_mb": _mib(result["peak_rss_kb"]),
        "base_rss_mb": _mib(result["rss_base_kb"]),
        "check": checks.batch_check(result, stats, tracked=True),
        "raw": result,
    }


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / KIB_PER_MIB
