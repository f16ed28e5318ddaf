"""Issue 16's "done when": the Ray backend beside the process backend, rate-limited.

    python benchmarks/ray_backend.py [--requests 600] [--processes 2] [--skip-processes]
        [--redis-requests 1500] [--processor-rows 600]

Against the simulator (its own process) enforcing 3,000 RPM per 1-s window with 30 ms latency:
``APIClient(3000, None, backend="ray", processes=N)`` with the cluster store (no Redis), then
the same batch with worker processes. Each client first runs a warm-up batch (actors import
litellm when they start; workers are forked), then the simulator is reset and the measured
batch runs. Per run: every answer its own request's, in order; 429s; the first-to-last
admission span against ``requests / 50 x 1.06 + 1.5`` s; tracker totals against the server's
counts; the steady share of the limit; CPU per request (the driver, plus the call actors' or
worker processes', read from /proc). With ``redis-server`` on the PATH, the Ray backend again
with ``rate_limit_store=<redis>`` (``--redis-requests``), and ``build_processor(concurrency=2,
rate_limit_store=<redis>)`` over a ``--processor-rows`` dataset (every row its own answer).
Then the cluster store's round trip (``snapshot`` and ``reserve``, from this process). Exits 1
when a check fails.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray
import ray.data

from llm_api_client import APIClient
from llm_api_client.ratelimit import Cost, Limits
from llm_api_client.ratelimit.cluster_store import ClusterStore
from llm_api_client.simulator import Simulator

RPM = 3_000
LATENCY_MS = 30
WARMUP = 20
TICKS = os.sysconf("SC_CLK_TCK")


def request(base_url: str, i: int) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": f"item {i}"}],
        "api_base": base_url,
        "api_key": "sk-bench",
        "max_tokens": 8,
    }


def cpu_seconds(chosen: Any) -> float:
    """CPU (user + system) of every process ``chosen(cmdline, parent_pid, pid)`` picks."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if chosen(cmdline, int(fields[1]), int(entry.name)):
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def helpers_cpu(backend: str, sim_pid: int | None) -> float:
    """The call actors' CPU (Ray names their processes), or the forked workers' (children)."""
    if backend == "ray":
        return cpu_seconds(lambda cmdline, ppid, pid: "ray::CallActor" in cmdline)
    return cpu_seconds(lambda cmdline, ppid, pid: ppid == os.getpid() and pid != sim_pid)


def run(
    sim: Simulator, backend: str, processes: int, n: int, store: dict[str, str] | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {"backend": "ray", **(store or {})} if backend == "ray" else {}
    with APIClient(RPM, None, processes=processes, **options) as client:
        client.make_requests([request(sim.base_url, -1 - i) for i in range(WARMUP)])
        time.sleep(1.5)  # the buckets refill after the warm-up
        sim.reset()
        calls_before, prompt_before = (
            client.tracker.num_api_calls,
            client.tracker.total_prompt_tokens,
        )
        cpu_before, helpers_before = time.process_time(), helpers_cpu(backend, sim.pid)
        started = time.monotonic()
        responses = client.make_requests_with_retries(
            [request(sim.base_url, i) for i in range(n)], max_retries=4
        )
        wall = time.monotonic() - started
        helpers = helpers_cpu(backend, sim.pid) - helpers_before
        cpu = time.process_time() - cpu_before + helpers
        stats = sim.stats()
        calls = client.tracker.num_api_calls - calls_before
        prompt = client.tracker.total_prompt_tokens - prompt_before
    correct = all(
        r is not None and r.choices[0].message.content.startswith(f"echo: item {i}")
        for i, r in enumerate(responses)
    )
    return {
        "backend": backend + (" + redis" if store else ""),
        "requests": n,
        "correct_in_order": correct,
        **pacing(stats, n),
        "tracker_equals_server": calls == stats["answered"] and prompt == stats["prompt_tokens"],
        "wall_s": round(wall, 2),
        "cpu_ms_per_request": round(1000 * cpu / n, 2),
    }


def pacing(stats: dict[str, Any], n: int) -> dict[str, Any]:
    """429s, the first-to-last admission span against its bound, the steady share of the limit."""
    busy = [s for s, count in enumerate(stats["admissions_per_second"]) if count]
    # The seconds strictly inside the busy span: a Ray Data pipeline starts a while after reset.
    middle = stats["admissions_per_second"][busy[0] + 1 : busy[-1]] if busy else []
    return {
        "rejected_429": stats["rejected_429"],
        "span_s": busy[-1] - busy[0] if busy else None,
        "span_bound_s": n / (RPM / 60) * 1.06 + 1.5,
        "steady_share": (sum(middle) / len(middle)) / (RPM / 60) if middle else None,
    }


def row_request(base_url: str, row: dict[str, Any]) -> dict[str, Any]:
    return request(base_url, row["id"])


def answer(row: dict[str, Any]) -> str:
    return str(row["response"]["choices"][0]["message"]["content"])


def run_processor(sim: Simulator, n: int, store: dict[str, str]) -> dict[str, Any]:
    """``build_processor`` over ``n`` rows (after a warm-up dataset), one Redis quota."""
    from llm_api_client.ray import build_processor

    processor = build_processor(
        functools.partial(row_request, sim.base_url),
        concurrency=2,
        max_requests_per_minute=RPM,
        max_tokens_per_minute=None,
        max_retries=4,
        **store,
    )
    processor(ray.data.range(WARMUP)).take_all()  # the actors start (Ray Data keeps no pool)
    time.sleep(1.5)
    sim.reset()
    started = time.monotonic()
    rows = processor(ray.data.range(n)).take_all()
    wall = time.monotonic() - started
    stats = sim.stats()
    correct = sorted(row["id"] for row in rows) == list(range(n)) and all(
        row["error"] is None and answer(row).startswith(f"echo: item {row['id']}") for row in rows
    )
    return {
        "backend": "build_processor + redis",
        "requests": n,
        "correct_in_order": correct,
        **pacing(stats, n),
        "tracker_equals_server": stats["answered"] == n,
        "wall_s": round(wall, 2),
    }


def redis_runs(sim: Simulator, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The Ray backend and the processor with a Redis store, when redis-server is found."""
    from tests.redis_server import RedisServer, have_redis

    if not have_redis():
        print("redis-server or redis-py not found: the Redis cases are skipped")
        return []
    server = RedisServer()
    try:
        store = {"rate_limit_store": server.url, "rate_limit_key": "bench-backend"}
        rows = [run(sim, "ray", args.processes, args.redis_requests, store)]
        store = {"rate_limit_store": server.url, "rate_limit_key": "bench-processor"}
        return [*rows, run_processor(sim, args.processor_rows, store)]
    finally:
        server.stop()


def passed(row: dict[str, Any]) -> bool:
    """The done-when checks: correct, in order, counted right, few 429s, within the bound."""
    few = row["rejected_429"] <= max(3, 8 * row["requests"] // 1500)
    paced = row["span_s"] is not None and row["span_s"] <= row["span_bound_s"]
    return bool(row["correct_in_order"] and row["tracker_equals_server"] and few and paced)


def store_round_trip(calls: int = 300) -> dict[str, float]:
    store = ClusterStore.create(Limits(requests_per_minute=10**9, burst_seconds=10))
    try:
        store.snapshot()  # the actor is up
        timings = {}
        for name, operation in (
            ("snapshot", store.snapshot),
            ("reserve", lambda: store.reserve(Cost(), None)),
        ):
            started = time.monotonic()
            for _ in range(calls):
                operation()
            timings[f"{name}_ms"] = round(1000 * (time.monotonic() - started) / calls, 3)
        return timings
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--redis-requests", type=int, default=1500)
    parser.add_argument("--processor-rows", type=int, default=600)
    args = parser.parse_args()
    ray.init(include_dashboard=False)
    print(f"load average before: {os.getloadavg()}")
    ok = True
    with Simulator(process=True, rpm=RPM, latency_ms=LATENCY_MS) as sim:
        backends = ["ray"] if args.skip_processes else ["ray", "processes"]
        rows = [run(sim, backend, args.processes, args.requests) for backend in backends]
        for row in [*rows, *redis_runs(sim, args)]:
            print(row)
            ok &= passed(row)
    print("cluster store round trip:", store_round_trip())
    print(f"load average after: {os.getloadavg()}")
    ray.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
