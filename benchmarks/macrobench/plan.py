"""What one run measures: the full plan and the ``--quick`` one."""

from __future__ import annotations

import os
from dataclasses import dataclass

CPUS = os.cpu_count() or 1
SECTIONS = ("throughput", "ratelimit", "stream")
UNLIMITED_RPM = 10_000_000  # "no limit" for clients that need a number (the seed does)
UNLIMITED_TPM = 10_000_000_000


@dataclass(frozen=True)
class Plan:
    """Sizes of one run; ``--quick`` shrinks them to stay under 3 minutes on 2 cores."""

    latencies: tuple[int, ...]
    batch: dict[int, int]  # latency ms -> measured requests per variant and round
    concurrency: dict[int, int]  # latency ms -> threads, the same for every variant
    warmup: int
    processes: tuple[int, ...]
    rpm_requests: int
    tpm_requests: int
    stream_sizes: tuple[int, ...]
    rounds: int = 1
    lean_processes: tuple[int, ...] = (0,)  # this library on its lean transport (the default)


FULL = Plan(
    latencies=(0, 50, 500),
    batch={0: 1500, 50: 1500, 500: 1500},
    concurrency={0: 100, 50: 100, 500: 400},
    warmup=200,
    processes=(0, *range(1, CPUS + 1)),
    rpm_requests=1200,
    tpm_requests=400,
    stream_sizes=(5_000, 25_000, 100_000),
    rounds=3,
)
# At the ~140 requests/s one streamed batch sustains on a shared 2-core machine, 25k requests
# alone would take 3 minutes: --quick streams 5k only, and measures the library at 0 and N
# processes only. The targets stay those of the full plan: what --quick skips shows as
# "no measurement".
QUICK = Plan(
    latencies=(0, 50, 500),
    batch={0: 200, 50: 200, 500: 300},
    concurrency={0: 100, 50: 100, 500: 400},
    warmup=30,
    processes=(0, CPUS),
    rpm_requests=300,
    tpm_requests=100,
    stream_sizes=(5_000,),
)


def ours(processes: int) -> str:
    """The variant label of this library at ``processes`` worker processes, every request on
    the litellm transport (the variant issues 3 and 5 set targets for)."""
    return f"ours processes={processes}"


def lean(processes: int) -> str:
    """The variant label of this library with its default transport ("auto"), which sends the
    benchmark's plain OpenAI-compatible requests through the lean HTTP path."""
    return f"ours lean transport processes={processes}"


BARE = "bare ThreadPoolExecutor"
AIOHTTP = "raw aiohttp client"
SEED = "seed 0.1.8"
