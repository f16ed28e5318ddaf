"""Several hosts, one quota: three independent processes on one Redis key against the simulator.

    python benchmarks/redis_quota.py [--case rpm kill split tpm learning] [--scale 1.0]

Each case starts a ``redis-server`` (unix socket, no persistence) and a simulator enforcing its
limits per 1-s window, then three client processes, each ``APIClient(processes=0,
rate_limit_store=..., rate_limit_key=...)`` with uneven jobs (3:1:1), started together after a
warm-up on another key. Cases:

- ``rpm``: 3,000 RPM, jobs 1,800 / 600 / 600 (ideal: 60 s);
- ``kill``: the same, Redis killed (-9) 10 s in and restarted, empty, 2 s later;
- ``split``: no Redis; the limit split by hand, 1,000 RPM each in its process's own quota (the
  CPU baseline, and what a shared quota saves: the big job runs alone at a third of the limit);
- ``tpm``: 600,000 TPM, max_tokens 400, jobs 900 / 300 / 300;
- ``learning``: the provider allows 60 RPM, the clients are set to 3,000 and learn it from the
  headers; jobs 36 / 12 / 12.

Per case one JSON line: answered correctly, the server's 429s, first to last admission against
the ideal, the share of the limit, Redis commands per request (``INFO commandstats``: sent by
the clients, and all, with those the scripts run), client CPU per request. ``--scale`` shrinks
the jobs (0.1 for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks")]

import _harness  # noqa: E402

# Commands a script runs inside Redis (the clients never send these themselves).
SCRIPT_COMMANDS = {"get", "set", "time", "publish", "pexpire"}
# Commands this script sends to measure (not the clients).
BENCH_COMMANDS = ("config", "info")
JOBS = (3, 1, 1)  # shares of each case's requests


@dataclass(frozen=True)
class Case:
    name: str
    requests: int  # all three jobs together
    sim_rpm: float | None
    sim_tpm: float | None
    client_rpm: float | None  # each client's configured limit
    client_tpm: float | None
    max_tokens: int
    redis: bool = True
    kill_at: float | None = None  # seconds after the start
    outage: float = 2.0


CASES = {
    "rpm": Case("rpm", 3_000, 3_000, None, 3_000, None, 16),
    "kill": Case("kill", 3_000, 3_000, None, 3_000, None, 16, kill_at=10.0),
    "split": Case("split", 3_000, 3_000, None, 1_000, None, 16, redis=False),
    "tpm": Case("tpm", 1_500, None, 600_000, None, 600_000, 400),
    "learning": Case("learning", 60, 60, None, 3_000, None, 16),
}


# --- one client process ---------------------------------------------------------------------------


def client_main(spec: dict[str, Any]) -> None:
    """A client: warm up on another key, say ready, wait for the go file, run its job."""
    from llm_api_client import APIClient

    def make(key: str, rpm: float | None) -> APIClient:
        return APIClient(
            rpm, spec["client_tpm"], processes=0,
            rate_limit_store=spec["store"], rate_limit_key=key,
        )  # fmt: skip

    tag, base_url = spec["tag"], spec["base_url"]
    with make(spec["key"] + "-warmup", None) as warm:
        warm.make_requests([_harness.request(tag + "w", 0, 4, base_url)])
    client = make(spec["key"], spec["client_rpm"])
    requests = list(_harness.requests(tag, spec["n"], spec["max_tokens"], base_url))
    print("ready", flush=True)
    while not os.path.exists(spec["go"]):
        time.sleep(0.005)
    cpu, wall = time.process_time(), time.monotonic()
    responses = client.make_requests_with_retries(requests, max_retries=10)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    correct = sum(_harness.echoes(r, tag, i) for i, r in enumerate(responses))
    tracker = client.tracker.details
    print(json.dumps({"n": spec["n"], "correct": correct, "cpu": cpu, "wall": wall,
                      "client_429s": tracker.get("num_rate_limited")}), flush=True)  # fmt: skip
    client.close()


# --- a case ---------------------------------------------------------------------------------------


def run_case(case: Case, scale: float) -> dict[str, Any]:
    from llm_api_client.simulator import Simulator
    from tests.redis_server import RedisServer

    server = RedisServer() if case.redis else None
    sim = Simulator(process=True, rpm=case.sim_rpm, tpm=case.sim_tpm, latency_ms=50.0)
    sim.start()
    go = os.path.join("/tmp", f"redis-quota-go-{os.getpid()}-{case.name}")
    try:
        sizes = [max(1, round(case.requests * scale * share / sum(JOBS))) for share in JOBS]
        clients = [_start_client(case, server, sim, go, i, n) for i, n in enumerate(sizes)]
        for process in clients:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a client did not start")
        time.sleep(2.0)  # the warm-up's window passes
        sim.reset()
        redis_client = server.client() if server else None
        if redis_client is not None:
            redis_client.config_resetstat()
        start = time.monotonic()
        open(go, "w").close()
        before_kill: dict[str, int] = {}  # a restart resets Redis's counts
        if server is not None and case.kill_at is not None:
            _kill_and_restart(server, case.kill_at, case.outage, before_kill)
        results = [json.loads(process.communicate()[0].splitlines()[-1]) for process in clients]
        wall = time.monotonic() - start
        stats = sim.stats()
        commands = _commands(server.client()) if server else {}
        for name, calls in before_kill.items():
            commands[name] = commands.get(name, 0) + calls
        return _figures(case, sizes, results, stats, commands, wall)
    finally:
        sim.stop()
        if server is not None:
            server.stop()
        if os.path.exists(go):
            os.unlink(go)


def _start_client(
    case: Case, server: Any, sim: Any, go: str, index: int, n: int
) -> subprocess.Popen[str]:
    spec = {
        "store": server.url if server else None,
        "key": f"bench-{case.name}" if server else f"own-{index}",
        "tag": f"{case.name}{index}",
        "base_url": sim.base_url,
        "n": n,
        "max_tokens": case.max_tokens,
        "client_rpm": case.client_rpm,
        "client_tpm": case.client_tpm,
        "go": go,
    }
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": ROOT}
    command = [sys.executable, os.path.abspath(__file__), "--client", json.dumps(spec)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)


def _kill_and_restart(server: Any, kill_at: float, outage: float, counts: dict[str, int]) -> None:
    def outage_then_restart() -> None:
        time.sleep(kill_at)
        counts.update(_commands(server.client()))
        server.kill9()
        time.sleep(outage)
        server.start()

    threading.Thread(target=outage_then_restart, daemon=True).start()


def _commands(redis_client: Any) -> dict[str, int]:
    stats = redis_client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def _figures(
    case: Case,
    sizes: list[int],
    results: list[dict[str, Any]],
    stats: dict[str, Any],
    commands: dict[str, int],
    wall: float,
) -> dict[str, Any]:
    n = sum(sizes)
    per_second = stats["admissions_per_second"]
    busy = [second for second, count in enumerate(per_second) if count]
    span = busy[-1] - busy[0] + 1 if busy else None  # whole seconds, first to last admission
    limit_rps = _limit_per_second(case, stats)
    ideal = n / limit_rps
    sent_by_clients = sum(
        calls for name, calls in commands.items()
        if name not in SCRIPT_COMMANDS and not name.startswith(BENCH_COMMANDS)
    )  # fmt: skip
    return {
        "case": case.name,
        "jobs": sizes,
        "correct": sum(r["correct"] for r in results),
        "requests": n,
        "admitted_by_server": stats["admitted"],  # > requests: something was sent twice
        "server_429s": stats["rejected_429"],
        "share_429": stats["rejected_429"] / n,
        "ideal_s": round(ideal, 2),
        "first_to_last_admission_s": span,
        "bar_s": round(ideal * 1.06 + 1.5, 2),
        "share_of_limit": round(ideal / span, 3) if span else None,
        "wall_s": round(max(r["wall"] for r in results), 2),
        "wall_with_exits_s": round(wall, 2),
        "job_walls_s": [round(r["wall"], 2) for r in results],
        "redis_commands_per_request": round(sent_by_clients / n, 3) if commands else None,
        "redis_commands_per_request_with_scripts": (
            round((sent_by_clients + sum(commands.get(k, 0) for k in SCRIPT_COMMANDS)) / n, 3)
            if commands
            else None
        ),
        "commands": commands,
        "client_cpu_ms_per_request": round(1000 * sum(r["cpu"] for r in results) / n, 3),
        "peak_second": max(per_second, default=0),
        "max_sliding_second": stats.get("max_admissions_per_second"),
    }


def _limit_per_second(case: Case, stats: dict[str, Any]) -> float:
    if case.sim_rpm is not None:
        return case.sim_rpm / 60.0
    tokens_per_request = stats["tokens_charged"] / max(1, stats["admitted"])
    return (case.sim_tpm or 0) / 60.0 / tokens_per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs="*", choices=list(CASES), default=["rpm", "kill", "split"])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each case's jobs")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(json.loads(args.client))
        return
    for name in args.case:
        print(json.dumps(run_case(CASES[name], args.scale)), flush=True)


if __name__ == "__main__":
    main()
