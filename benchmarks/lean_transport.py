"""Issue 17's "done when": CPU per request at processes=0, default transport vs a bare pool.

    python benchmarks/lean_transport.py [--requests 3000] [--threads 50] [--pairs 3]

Against the simulator (its own process) at 0 ms latency, in this one process, interleaved:
``APIClient(processes=0, max_workers=threads)`` with the default transport (``"auto"``: plain
OpenAI-compatible requests skip litellm), the same with ``transport="litellm"``, a bare
``ThreadPoolExecutor`` calling ``litellm.completion`` on the same HTTP pool, and the floor: a
raw aiohttp client (``aiohttp_floor.py``) posting the same requests. At processes=0 the
client's process tree is this process, so its CPU (all threads, including what litellm
finishes in the background within ``--settle`` seconds) is the tree's. Every answer must be
its own request's, and for each client batch the tracker's totals must equal the simulator's
counts. Prints the median ratios ``auto / bare`` and ``auto / aiohttp`` and the load average;
exits 1 when a check fails or ``auto / bare`` is above ``--target`` (0.2, the issue's).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _variant
import aiohttp_floor
import inprocess_overhead as overhead
from macrobench.plan import UNLIMITED_RPM, UNLIMITED_TPM

from llm_api_client import _offline
from llm_api_client.providers.http_pool import install_http_client
from llm_api_client.simulator import Simulator

KINDS = ("auto", "litellm", "bare", "aiohttp")


def runners(threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``run(batch) -> answers`` per kind, and the clients whose trackers are checked."""
    install_http_client(_offline.litellm())  # the bare pool gets the pool ours gives litellm
    spec = {"rpm": UNLIMITED_RPM, "tpm": UNLIMITED_TPM, "processes": 0, "concurrency": threads}
    run, clients = {}, {}
    for kind in ("auto", "litellm"):
        run[kind], clients[kind] = _variant.client_runner("ours", spec | {"transport": kind})
    run["bare"], _ = _variant.bare_runner({"concurrency": threads})
    run["aiohttp"], _ = aiohttp_floor.floor_runner({"concurrency": threads})
    return run, clients


def measured(sim: Simulator, run: Any, client: Any, tag: str, args: argparse.Namespace) -> Any:
    """One batch; its problems include tracker totals that differ from the simulator's."""
    sim.reset()
    before = _variant.tracker_totals(client)
    batch = overhead.measure(run, tag, args.requests, sim.base_url, args.settle)
    if client is None:
        return batch
    stats = sim.stats()
    counted = _variant.delta(_variant.tracker_totals(client), before)
    served = {
        "calls": stats["admitted"],
        "prompt": stats["prompt_tokens"],
        "completion": stats["completion_tokens"],
    }
    if counted != served:
        problem = f"tracker {counted} != simulator {served}"
        return overhead.Batch(batch.rps, batch.cpu_ms, (*batch.problems, problem))
    return batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=3, help="interleaved rounds of every kind")
    parser.add_argument("--warmup", type=int, default=300, help="requests per kind, untimed")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after each batch")
    parser.add_argument("--target", type=float, default=0.2, help="the most auto/bare may be")
    args = parser.parse_args(argv)
    with Simulator(process=True, latency_ms=0.0) as sim:
        run, clients = runners(args.threads)
        for kind in KINDS:
            overhead.measure(run[kind], f"warm-{kind}", args.warmup, sim.base_url, args.settle)
        rounds = []
        for k in range(args.pairs):
            kinds = KINDS if k % 2 == 0 else KINDS[::-1]
            rounds.append(
                {kind: measured(sim, run[kind], clients.get(kind), f"{k}{kind}", args)
                 for kind in kinds}
            )  # fmt: skip
        for client in clients.values():
            client.close()
        run["aiohttp"].close()
    return report(rounds, args)


def report(rounds: list[dict[str, Any]], args: argparse.Namespace) -> int:
    print(f"{args.requests} requests, {args.threads} threads, 0 ms latency, processes=0")
    print(f"load average before/after: {os.getloadavg()}")
    for k, found in enumerate(rounds):
        cells = [f"{kind} {found[kind].cpu_ms:.2f} ms/req {found[kind].rps:.0f} req/s"
                 for kind in KINDS]  # fmt: skip
        print(f"round {k + 1}: " + "; ".join(cells))
    ratio = median(r["auto"].cpu_ms / r["bare"].cpu_ms for r in rounds)
    forced = median(r["litellm"].cpu_ms / r["bare"].cpu_ms for r in rounds)
    print(f"CPU per request, auto / bare: median {ratio:.3f}x (target <= {args.target}x)")
    print(f"CPU per request, transport='litellm' / bare: median {forced:.3f}x")
    floor = median(r["auto"].cpu_ms / r["aiohttp"].cpu_ms for r in rounds)
    print(f"CPU per request, auto / raw aiohttp floor: median {floor:.2f}x")
    problems = [f"round {k + 1} {kind}: {'; '.join(r[kind].problems)}"
                for k, r in enumerate(rounds) for kind in KINDS if r[kind].problems]  # fmt: skip
    for problem in problems:
        print("FAIL:", problem)
    return 1 if problems or ratio > args.target else 0


if __name__ == "__main__":
    sys.exit(main())
