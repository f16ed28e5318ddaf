"""Section "ratelimit": the share of a limit each client achieves, and its 429s.

The simulator enforces OpenAI-style limits per second (a 3,000 RPM limit admits 50 requests in
any second). Each client is configured at the simulator's limit and otherwise runs with its
defaults: ours with 2 processes, and the seed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from llm_api_client.simulator import Simulator
from macrobench import checks
from macrobench.plan import SEED, Plan, ours
from macrobench.runner import Runner


@dataclass(frozen=True)
class LimitCase:
    name: str
    rpm: int | None  # the simulator's and the client's
    tpm: int | None
    max_tokens: int


RPM_CASE = LimitCase("RPM-bound 3,000 RPM", rpm=3000, tpm=None, max_tokens=16)
TPM_CASE = LimitCase("TPM-bound 600k TPM, max_tokens=400", rpm=None, tpm=600_000, max_tokens=400)
CASES = (RPM_CASE, TPM_CASE)
OURS_PROCESSES = 2
LATENCY_MS = 50.0
WARMUP = 20  # starts the workers and connection pools; then both buckets refill
SETTLE_SECONDS = 2.0
TIMEOUT_SECONDS = 1200


def variants() -> list[tuple[str, dict[str, Any]]]:
    return [
        (ours(OURS_PROCESSES), {"kind": "ours", "processes": OURS_PROCESSES}),
        (SEED, {"kind": "seed"}),
    ]


def run(plan: Plan, runner: Runner) -> list[dict[str, Any]]:
    """Per client, one subprocess running the RPM-bound then the TPM-bound batch."""
    sizes = {RPM_CASE: plan.rpm_requests, TPM_CASE: plan.tpm_requests}
    runner.log("rate-limit efficiency: " + "; ".join(case.name for case in CASES))
    rows = []
    with contextlib.ExitStack() as stack:
        sims = {
            case: stack.enter_context(
                Simulator(process=True, rpm=case.rpm, tpm=case.tpm, latency_ms=LATENCY_MS)
            )
            for case in CASES
        }
        for label, extra in variants():
            phases = [_phase(case, sizes[case], sims[case], extra) for case in CASES]
            spec = {"mode": "batch", "kind": extra["kind"], "phases": phases}
            result = runner.run(f"{label} rate-limited", spec, TIMEOUT_SECONDS)
            for k, case in enumerate(CASES):
                row = {"section": "ratelimit", "case": case.name, "variant": label, **extra}
                row.update(figures(case, result["phases"][k] if "phases" in result else result))
                rows.append(row)
    return rows


def _phase(case: LimitCase, n: int, sim: Simulator, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "sim": sim.url,
        "sim_pid": sim.pid,
        "base_url": None if extra["kind"] == "seed" else sim.base_url,
        "n": n,
        "warmup": WARMUP,
        "settle": SETTLE_SECONDS,
        "concurrency": None,  # each client's default, as a user would run it
        # The limit the simulator enforces; the other one at the seed's default.
        "rpm": case.rpm or 10_000,
        "tpm": case.tpm or 2_000_000,
        "max_tokens": case.max_tokens,
        "processes": extra.get("processes"),
    }


def figures(case: LimitCase, result: dict[str, Any]) -> dict[str, Any]:
    """One row's figures from a measured batch (or its error)."""
    if "error" in result:
        return {"error": result["error"]}
    stats = checks.take_stats(result)
    per_second = stats["admissions_per_second"]
    tokens_per_request = stats["tokens_charged"] / max(1, stats["admitted"])
    limit_per_second = (case.rpm / 60) if case.rpm else (case.tpm or 0) / 60 / tokens_per_request
    steady = steady_rate(per_second)
    return {
        "requests": result["n"],
        "answered": result["ok"],
        "failures": result.get("errors", {}),
        "rejected_429": stats["rejected_429"],
        "share_429": stats["rejected_429"] / result["n"],
        "limit_rps": limit_per_second,
        "steady_rps": steady,
        "steady_share": steady / limit_per_second if steady is not None else None,
        "overall_share": stats["admitted"] / result["wall"] / limit_per_second,
        "peak_second": max(per_second, default=0),
        "max_sliding_second": stats["max_admissions_per_second"],
        "wall_s": result["wall"],
        "cpu_ms_per_request": 1000 * result["cpu"] / result["n"],
        "admissions_per_second": per_second,
        # Every request must end answered, whatever made one fail: a 429 or anything else.
        "check": checks.batch_check(result, stats, tracked=True),
        "raw": result,
    }


def steady_rate(per_second: list[int]) -> float | None:
    """Mean admissions per second without the first and last (partial) seconds."""
    middle = per_second[1:-1]
    return sum(middle) / len(middle) if middle else None
