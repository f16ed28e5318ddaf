"""Where this library's own CPU per request goes on the lean transport, stage by stage.

    python benchmarks/overhead_profile.py [--requests 2000] [--threads 50] [--markdown]

``APIClient(processes=0)`` with the default transport against the simulator (its own process)
at 0 ms latency: with the HTTP this cheap, the per-request pipeline around it is the cost. Two
fresh processes each warm a client up and measure one batch: one plain, whose CPU per request
(all its threads) is the total; one under cProfile in every thread (``threading.setprofile``
starts a profiler in each thread the client starts, timing each thread's CPU), whose self time
per function over the measured batch (two snapshots' difference), summed by ``STAGES``, splits
that total. The profiler slows small functions more than large ones, so the shares are
approximate; each stage's microseconds are its share of the plain total.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _harness as h
import _variant
from macrobench import report
from macrobench.plan import UNLIMITED_RPM, UNLIMITED_TPM

from llm_api_client.simulator import Simulator

# (stage, patterns in the file path); the first match wins, so specific before general.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("token counting", ("prepare/chat_tokens", "tiktoken", "/tokens.py")),
    ("prepare (validate, sanitize, truncate)", ("llm_api_client/prepare/",)),
    ("rate limiter", ("llm_api_client/ratelimit/",)),
    ("lean transport: body out, ModelResponse in", ("providers/http_transport", "providers/")),
    ("litellm types (ModelResponse, Usage)", ("litellm/",)),
    ("pydantic", ("pydantic",)),
    ("HTTP (aiohttp, its event loop)", ("aiohttp", "asyncio/", "multidict", "yarl")),
    ("JSON", ("json/",)),
    ("usage record, tracker merge, history", ("records.py", "tracker.py", "api_tracker.py")),
    ("per-request call and retry (tenacity)", ("llm_api_client/call/", "tenacity/")),
    ("engine: coordinator, backend, execution", ("llm_api_client/engine/", "client.py")),
    ("threads, queues, futures, locks", ("threading.py", "queue.py", "concurrent/")),
    ("the benchmark's own (requests, echo check)", ("benchmarks/",)),
]
OTHER = "other"
PROFILER = ("cProfile.py", "_lsprof", "overhead_profile.py")  # the measuring, not measured


def stage_of(function: str) -> str:
    """The stage of a profiled function (``file:line(name)``)."""
    for stage, patterns in STAGES:
        if any(p in function for p in patterns):
            return stage
    return OTHER


class ThreadProfiles:
    """A cProfile profiler in this thread and in every thread started after ``start``."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_here(self, *_: Any) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)  # CPU, not wall: waits cost nothing
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def start(self) -> None:
        threading.setprofile(self._start_here)
        self._start_here()

    def self_times(self) -> dict[tuple[str, str], float]:
        """Seconds of self time so far, all threads (read without stopping the profilers), per
        function and the function it is charged to: itself, or for a built-in (``~``), each of
        its callers in proportion, so that ``isinstance`` counts where it is called from."""
        out: dict[tuple[str, str], float] = defaultdict(float)
        with self._lock:
            profiles = list(self.profiles)
        for profile in profiles:
            profile.snapshot_stats()
            for function, row in profile.stats.items():  # type: ignore[attr-defined]
                name = label(function)
                if function[0] != "~":
                    out[name, name] += row[2]
                    continue
                for caller, share in row[4].items():
                    out[name, label(caller)] += share[2]
        return out


def label(function: tuple[str, int, str]) -> str:
    filename, line, name = function
    return f"{filename}:{line}({name})"


def by_stage(before: dict[Any, float], after: dict[Any, float]) -> dict[str, float]:
    """Seconds of self time per stage between two ``self_times``, the profiler's own left out."""
    out: dict[str, float] = defaultdict(float)
    for (function, charged_to), seconds in after.items():
        if not any(p in function or p in charged_to for p in PROFILER):
            out[stage_of(charged_to)] += seconds - before.get((function, charged_to), 0.0)
    return dict(out)


def batch(run: Any, tag: str, n: int, base_url: str) -> float:
    """CPU seconds of this process (all threads) over one batch; every answer checked."""
    requests = list(h.requests(tag, n, max_tokens=16, base_url=base_url))
    before = time.process_time()
    answers = run(requests)
    cpu = time.process_time() - before
    wrong = sum(not h.echoes(a, tag, i) for i, a in enumerate(answers))
    if wrong:
        raise SystemExit(f"{wrong} of {n} answers missing or not their request's")
    return cpu


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One process's figures: CPU per request, or seconds per stage under the profiler."""
    _variant.preload_litellm()  # imported before the profiler starts: not a per-request cost
    profiles = ThreadProfiles()
    if args.child == "profiled":
        profiles.start()  # before the client, so that every thread it starts is profiled
    spec = {"rpm": UNLIMITED_RPM, "tpm": UNLIMITED_TPM, "processes": 0}
    run, client = _variant.client_runner("ours", spec | {"concurrency": args.threads})
    try:
        batch(run, "warm", args.warmup, args.base_url)
        before = profiles.self_times()
        cpu = batch(run, "measured", args.requests, args.base_url)
        return {
            "cpu_per_request": cpu / args.requests,
            "stages": by_stage(before, profiles.self_times()),
        }
    finally:
        client.close()


def in_child(mode: str, args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", mode, "--base-url", base_url]
    argv += ["--requests", str(args.requests), "--threads", str(args.threads)]
    argv += ["--warmup", str(args.warmup)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    result = _variant_result(done.stdout)
    if result is None:
        raise SystemExit(f"the {mode} run failed: {done.stderr[-2000:]}")
    return result


def _variant_result(stdout: str) -> dict[str, Any] | None:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else None


def table(plain: float, seconds: dict[str, float], *, markdown: bool) -> str:
    """A row per stage, largest first: its share of the profiled time, its µs of the plain."""
    total = sum(seconds.values())
    lines = [
        [
            stage,
            f"{100 * seconds[stage] / total:.1f}%",
            f"{1e6 * plain * seconds[stage] / total:.0f}",
        ]
        for stage in sorted(seconds, key=lambda stage: -seconds[stage])
    ]
    lines.append(["total", "100%", f"{1e6 * plain:.0f}"])
    return report.table(["stage", "share (profiled)", "CPU µs/request"], lines, markdown=markdown)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", choices=("plain", "profiled"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0
    clock = report.RunClock()
    with Simulator(process=True, latency_ms=0.0) as sim:
        plain = in_child("plain", args, sim.base_url)["cpu_per_request"]
        seconds = in_child("profiled", args, sim.base_url)["stages"]
    given = sys.argv[1:] if argv is None else argv
    print(clock.header(" ".join(["python benchmarks/overhead_profile.py", *given])) + "\n")
    print(table(plain, seconds, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
