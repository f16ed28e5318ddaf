"""``llm-api-client demo``: the main job, end to end, on the embedded simulator.

Starts the simulator (in its own process, with a visible rate limit enforced per second),
sends a few thousand requests through ``APIClient`` with worker processes, shows a progress
bar with live requests/min, tokens/min and cost, then prints the tracker's summary and what the
simulator saw. No key and no network needed.
"""

from __future__ import annotations

import argparse
from typing import Any

from llm_api_client import _settings
from llm_api_client.cli.options import (
    COUNT,
    NON_NEGATIVE,
    add_log_level,
    add_quiet,
    add_rate_limits,
    configure_logging,
    number,
)

DEMO_MODEL = "openai/gpt-4o-mini"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a few thousand requests against the embedded simulator"
    )
    add = parser.add_argument
    add("--requests", type=number(COUNT), default=3_000, help="how many requests to send")
    whose = "the simulator enforces and the client paces itself to"
    limits = {"requests": 12_000, "tokens": 2_000_000}
    add_rate_limits(parser, _settings.PER_MINUTE, **limits, whose=whose)
    processes = number(_settings.PROCESSES)
    add("--processes", type=processes, default=2, help="the client's worker processes")
    add("--latency-ms", type=number(NON_NEGATIVE), default=50.0, help="simulated latency")
    add_quiet(parser, "print only the final summary")
    add_log_level(parser)
    parser.set_defaults(func=run_demo)


def demo_requests(count: int, api_base: str) -> Any:
    """Short chat requests, each asking something different so answers can be told apart."""
    for i in range(count):
        yield {
            "model": DEMO_MODEL,
            "messages": [{"role": "user", "content": f"Request {i}: name a prime above {i}."}],
            "max_tokens": 32,
            "api_base": api_base,
            "api_key": "demo-key-not-secret",
        }


def run_demo(args: argparse.Namespace) -> int:
    from llm_api_client import APIClient
    from llm_api_client.jobs.progress import Progress
    from llm_api_client.simulator import Simulator

    configure_logging(args.log_level)
    rpm, tpm = args.max_requests_per_minute, args.max_tokens_per_minute
    with Simulator(rpm=rpm, tpm=tpm, latency_ms=args.latency_ms, process=True) as sim:
        print(f"simulator at {sim.base_url}: {rpm} RPM, {tpm} TPM, enforced per second")
        with APIClient(rpm, tpm, processes=args.processes) as client:
            stream = client.stream(demo_requests(args.requests, sim.base_url), max_retries=2)
            with Progress(total=args.requests, quiet=args.quiet) as progress:
                for result in stream:
                    progress.update(result)
            print(client.tracker)
        stats = sim.stats()
    print(
        f"simulator saw {stats['admitted']} admitted requests, "
        f"{stats['rejected_429']} rejected with 429"
    )
    return 0
