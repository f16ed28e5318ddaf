"""Section "throughput": requests/s and CPU per request with no limits, at several latencies.

Variants: ours on the litellm transport at every ``plan.processes``, ours on the default
transport (the lean HTTP path for these requests) at ``plan.lean_processes``, a bare
``ThreadPoolExecutor`` calling ``litellm.completion``, a raw aiohttp client (the floor:
``aiohttp_floor.py``) and the seed, all at one concurrency per latency. Each variant runs
``plan.rounds`` times, the rounds interleaving the variants; a row reports the median of its
rounds (req/s and CPU alike) and lists every round, a failed one failing the row's check.
"""

from __future__ import annotations

import contextlib
from statistics import median
from typing import Any

from llm_api_client.simulator import Simulator
from macrobench import checks
from macrobench.plan import AIOHTTP, BARE, SEED, UNLIMITED_RPM, UNLIMITED_TPM, Plan, lean, ours
from macrobench.runner import Runner

ROUND_TIMEOUT_SECONDS = 900


# Kinds whose batches have no tracker to check against the simulator's counts.
UNTRACKED = ("bare", "aiohttp")


def variants(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    out = [(ours(p), ours_spec(p, "litellm")) for p in plan.processes]
    out += [(lean(p), ours_spec(p, "auto")) for p in plan.lean_processes]
    floors = [(BARE, {"kind": "bare"}), (AIOHTTP, {"kind": "aiohttp"})]
    return [*out, *floors, (SEED, {"kind": "seed"})]


def ours_spec(processes: int, transport: str) -> dict[str, Any]:
    return {"kind": "ours", "processes": processes, "transport": transport}


def run(plan: Plan, runner: Runner) -> list[dict[str, Any]]:
    """One subprocess per variant and round, measuring every latency in turn (one simulator
    each)."""
    runner.log(f"throughput at {', '.join(map(str, plan.latencies))} ms")
    with contextlib.ExitStack() as stack:
        sims = {
            latency: stack.enter_context(Simulator(process=True, latency_ms=float(latency)))
            for latency in plan.latencies
        }
        rounds = [
            {label: _round(plan, runner, sims, label, extra, k) for label, extra in variants(plan)}
            for k in range(plan.rounds)
        ]
    return rows(plan, rounds)


def rows(plan: Plan, rounds: list[dict[str, dict[Any, Any]]]) -> list[dict[str, Any]]:
    """One row per latency and variant from every round's results (latency -> phase result,
    or ``{"error": why}`` for a round that failed as a whole)."""
    out = []
    for latency in plan.latencies:
        for label, extra in variants(plan):
            runs = [r[label].get(latency, {"error": r[label].get("error")}) for r in rounds]
            row = {"section": "throughput", "latency_ms": latency, "variant": label, **extra}
            row["concurrency"] = plan.concurrency[latency]
            row.update(summarize(runs, extra["kind"], plan.batch[latency]))
            out.append(row)
    add_ratios(out)
    return out


def _round(
    plan: Plan,
    runner: Runner,
    sims: dict[int, Simulator],
    label: str,
    extra: dict[str, Any],
    round_index: int,
) -> dict[Any, Any]:
    phases = [
        {
            "sim": sim.url,
            "sim_pid": sim.pid,
            "base_url": None if extra["kind"] == "seed" else sim.base_url,
            "n": plan.batch[latency],
            "warmup": plan.warmup,
            "concurrency": plan.concurrency[latency],
            "rpm": UNLIMITED_RPM,
            "tpm": UNLIMITED_TPM,
            "max_tokens": 16,
            "processes": extra.get("processes"),
            "transport": extra.get("transport"),
        }
        for latency, sim in sims.items()
    ]
    spec = {"mode": "batch", "kind": extra["kind"], "phases": phases}
    result = runner.run(f"{label} (round {round_index + 1})", spec, ROUND_TIMEOUT_SECONDS)
    if "error" in result:
        return {"error": result["error"]}
    return dict(zip(sims, result["phases"], strict=True))


def summarize(runs: list[dict[str, Any]], kind: str, n: int) -> dict[str, Any]:
    """The median of the rounds that ran, each round's figures, and one check for them all.

    Medians, not the best round: on a noisy machine the best req/s and the lowest CPU come
    from different rounds, and their ratios to other rows would compare unrelated extremes.
    """
    good = [r for r in runs if "error" not in r]
    lost = [f"round {k + 1} failed: {r['error']}" for k, r in enumerate(runs) if "error" in r]
    if not good:
        return {"error": "; ".join(lost) or "no round ran"}
    rps = [r["n"] / r["wall"] for r in good]
    cpu = [1000 * r["cpu"] / r["n"] for r in good]
    tracked = kind not in UNTRACKED
    batches = [checks.batch_check(r, checks.take_stats(r), tracked=tracked) for r in good]
    return {
        "requests": n * len(runs),
        "answered": sum(r["ok"] for r in good),
        "rps": median(rps),
        "cpu_ms_per_request": median(cpu),
        "simulator_cpu_ms_per_request": median(1000 * r["sim_cpu"] / r["n"] for r in good),
        "rounds_rps": [None if "error" in r else r["n"] / r["wall"] for r in runs],
        "rounds_cpu_ms": [None if "error" in r else 1000 * r["cpu"] / r["n"] for r in runs],
        "check": checks.merge([*batches, checks.found(lost)]),
        "raw": good,
    }


def ratio(row: dict[str, Any] | None, other: dict[str, Any] | None, key: str) -> float | None:
    """``row[key] / other[key]``, or None when either row is missing or has no figure."""
    if row is None or other is None or key not in row or key not in other:
        return None
    return float(row[key] / other[key])


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Per latency: each row's req/s / the seed's, CPU / the bare pool's and / the raw aiohttp
    floor's, req/s / 1 process's."""
    for latency in {r["latency_ms"] for r in rows}:
        same = {r["variant"]: r for r in rows if r["latency_ms"] == latency}
        seed, bare, one = same.get(SEED), same.get(BARE), same.get(ours(1))
        for r in same.values():
            r["x_seed_rps"] = ratio(r, seed, "rps")
            r["x_bare_cpu"] = ratio(r, bare, "cpu_ms_per_request")
            r["x_floor_cpu"] = ratio(r, same.get(AIOHTTP), "cpu_ms_per_request")
            more = (r.get("processes") or 0) > 1
            r["x_p1_rps"] = ratio(r, one, "rps") if more else None
