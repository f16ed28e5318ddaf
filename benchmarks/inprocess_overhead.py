"""In-process overhead: this library's threads-only mode against a bare pool, in one process.

    python benchmarks/inprocess_overhead.py [--pairs 6] [--requests 1500] [--latency-ms 50]
                                            [--threads 100] [--markdown]

``run.py`` measures each variant in a process of its own, and on a shared VM separate
processes' rounds drift apart by more than the overhead being measured. Here both run in this
one process against one simulator (in its own process), in interleaved pairs whose order
alternates: ``APIClient(processes=0, max_workers=threads)`` and a ``ThreadPoolExecutor``
calling ``litellm.completion``, both on the HTTP pool this library gives litellm
(``providers.http_pool``), so that the comparison is of what each adds around the same call.
CPU is this process's (all threads) from the start of a batch until ``--settle`` seconds after
it, so that work litellm finishes in the background after a call returns is counted too.

Prints one row per pair and the median of the pairs' CPU ratios (ours / bare); exits 1 when a
batch lost or mixed up an answer, since such a pair measures something else.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _harness as h
import _variant
from macrobench import report
from macrobench.plan import UNLIMITED_RPM, UNLIMITED_TPM

from llm_api_client import _offline
from llm_api_client.providers.http_pool import install_http_client
from llm_api_client.simulator import Simulator

Run = Callable[[list[dict[str, Any]]], list[Any]]
KINDS = ("ours", "bare")


@dataclass(frozen=True)
class Batch:
    """One measured batch: its speed, its CPU per request, what went wrong."""

    rps: float
    cpu_ms: float
    problems: tuple[str, ...]


def order(pair: int) -> tuple[str, str]:
    """Which kind runs first in a pair: alternating, so that drift favours neither."""
    return ("ours", "bare") if pair % 2 == 0 else ("bare", "ours")


def ratios(pairs: list[dict[str, Batch]]) -> list[float]:
    """Each pair's CPU per request, ours / bare."""
    return [p["ours"].cpu_ms / p["bare"].cpu_ms for p in pairs]


def measure(run: Run, tag: str, n: int, base_url: str, settle: float) -> Batch:
    """Time one batch of ``n`` requests tagged ``tag``; check every answer is its own."""
    batch = list(h.requests(tag, n, max_tokens=16, base_url=base_url))
    cpu, start = time.process_time(), time.perf_counter()
    responses = run(batch)
    wall = time.perf_counter() - start
    time.sleep(settle)
    cpu = time.process_time() - cpu
    lost = sum(r is None for r in responses)
    wrong = sum(r is not None and not h.echoes(r, tag, i) for i, r in enumerate(responses))
    counts = {"unanswered": lost, "answering another request": wrong}
    problems = tuple(f"{count} {what}" for what, count in counts.items() if count)
    return Batch(n / wall, 1000 * cpu / n, problems)


def compare(args: argparse.Namespace, base_url: str) -> list[dict[str, Batch]]:
    """Warm both kinds up, then measure ``args.pairs`` interleaved pairs."""
    # The pool ours would install at its first batch, installed now, for the bare pool too.
    install_http_client(_offline.litellm())
    spec = {"rpm": UNLIMITED_RPM, "tpm": UNLIMITED_TPM, "processes": 0}
    ours, client = _variant.client_runner("ours", spec | {"concurrency": args.threads})
    bare, _ = _variant.bare_runner({"concurrency": args.threads})
    run = {"ours": ours, "bare": bare}
    try:
        for kind in KINDS:  # imports, connections, litellm's first-call caches
            measure(run[kind], f"warm-{kind}", args.warmup, base_url, args.settle)
        return [
            {kind: measure(run[kind], f"{k}{kind}", args.requests, base_url, args.settle)
             for kind in order(k)}
            for k in range(args.pairs)
        ]  # fmt: skip
    finally:
        client.close()


def table(pairs: list[dict[str, Batch]], *, markdown: bool) -> str:
    headers = ["pair", "order", "ours req/s", "bare req/s", "ours CPU ms/req", "bare CPU ms/req"]
    lines = [
        [str(k + 1), " then ".join(order(k))]
        + [f"{p[kind].rps:.0f}" for kind in KINDS]
        + [f"{p[kind].cpu_ms:.2f}" for kind in KINDS]
        + [f"{x:.2f}x"]
        for k, (p, x) in enumerate(zip(pairs, ratios(pairs), strict=True))
    ]
    return report.table([*headers, "CPU ours/bare"], lines, markdown=markdown)


def verdict(pairs: list[dict[str, Batch]]) -> str:
    found = ratios(pairs)
    return (
        f"CPU per request, ours / bare: median {median(found):.2f}x "
        f"({min(found):.2f}x-{max(found):.2f}x over {len(found)} pairs)"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--requests", type=int, default=1500, help="per batch")
    parser.add_argument("--warmup", type=int, default=200, help="requests per kind, untimed")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the simulator's")
    parser.add_argument("--threads", type=int, default=100, help="both kinds'")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after each batch")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "benchmarks/inprocess_overhead.py", *given])
    clock = report.RunClock()
    with Simulator(process=True, latency_ms=args.latency_ms) as sim:
        pairs = compare(args, sim.base_url)
    print(clock.header(command) + "\n")
    print(table(pairs, markdown=args.markdown) + "\n")
    print(verdict(pairs))
    problems = [
        f"pair {k + 1} {kind}: {'; '.join(pair[kind].problems)}"
        for k, pair in enumerate(pairs)
        for kind in KINDS
        if pair[kind].problems
    ]
    for problem in problems:
        print("FAIL:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
