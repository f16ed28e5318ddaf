"""Soak: a long streamed batch against the simulator with faults; memory, threads, fds stay flat.

    python benchmarks/soak.py [--requests 50000] [--processes 2] [--markdown]

Samples the coordinator's RSS, thread count and open file descriptors (and the workers' RSS)
after the first tenth of the batch (warm) and at the end, and fails (exit 1) when any grew by
more than the allowance: memory 10 %, threads and file descriptors 2. Faults: 1 % 500s and
0.5 % dropped connections, answered by retries; every request must end answered.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from macrobench import report

from llm_api_client import APIClient
from llm_api_client.simulator import Simulator

MEMORY_GROWTH = 1.10
COUNT_GROWTH = 2
SAMPLED = (  # label, key of a sample, unit
    ("coordinator RSS", "rss_kib", " KiB"),
    ("coordinator threads", "threads", ""),
    ("coordinator open fds", "fds", ""),
    ("workers' RSS (all)", "worker_rss_kib", " KiB"),
)


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sample(client: APIClient) -> dict[str, int]:
    backend = client._runtime.backend
    workers = getattr(backend, "_workers", [])
    return {
        "rss_kib": rss_kib(),
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "worker_rss_kib": sum(rss_kib(w.process.pid) for w in workers if w.process.is_alive()),
    }


def requests(count: int, api_base: str):
    for i in range(count):
        yield {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": f"soak {i}"}],
            "api_base": api_base,
            "api_key": "soak",
            "max_tokens": 8,
            "timeout": 10,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table, not JSON")
    args = parser.parse_args()
    clock = report.RunClock()
    warm_at = args.requests // 10
    faults = {"fail_rate": 0.01, "drop_rate": 0.005, "seed": 1}
    with Simulator(process=True, **faults) as sim:
        client = APIClient(None, None, processes=args.processes, max_workers=64)
        started, warm, failed, done = time.monotonic(), None, 0, 0
        for result in client.stream(requests(args.requests, sim.base_url), max_retries=5):
            done += 1
            failed += not result.ok
            if done == warm_at:
                warm = sample(client)
        end = sample(client)
        elapsed = time.monotonic() - started
        client.close()
    assert warm is not None
    figures = {
        "requests": done,
        "failed": failed,
        "seconds": round(elapsed, 1),
        "requests_per_second": round(done / elapsed, 1),
        "warm": warm,
        "end": end,
    }
    if args.markdown:
        command = shlex.join(["python", "benchmarks/soak.py", *sys.argv[1:]])
        print(clock.header(command) + "\n")
        print(markdown(figures, warm_at))
    else:
        print(json.dumps(figures, indent=2))
    problems = grown(warm, end)
    if failed:
        problems.append(f"{failed} requests failed")
    for problem in problems:
        print("FAIL:", problem)
    return 1 if problems else 0


def markdown(figures: dict[str, Any], warm_at: int) -> str:
    """The warm and end samples side by side, then the batch's totals."""
    warm, end = figures["warm"], figures["end"]
    rows = [
        f"| {label} | {warm[key]:,}{unit} | {end[key]:,}{unit} |" for label, key, unit in SAMPLED
    ]
    n = figures["requests"]
    head = [f"| | after {warm_at:,} | after {n:,} |", "|---|---|---|"]
    totals = (
        f"{n - figures['failed']:,} of {n:,} answered, "
        f"{figures['requests_per_second']} requests/s over {figures['seconds']} s."
    )
    return "\n".join([*head, *rows]) + "\n\n" + totals


def grown(warm: dict[str, int], end: dict[str, int]) -> list[str]:
    problems = []
    for key in ("rss_kib", "worker_rss_kib"):
        if end[key] > warm[key] * MEMORY_GROWTH:
            problems.append(f"{key} grew from {warm[key]} to {end[key]}")
    for key in ("threads", "fds"):
        if end[key] > warm[key] + COUNT_GROWTH:
            problems.append(f"{key} grew from {warm[key]} to {end[key]}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
