"""Measure how many chat completions per second the simulator answers on loopback.

    python benchmarks/simulator_capacity.py [--seconds 5] [--connections 64] [--distinct 10000]

The simulator runs in its own process (one event loop, so one core); this script is the load
generator: a raw asyncio HTTP/1.1 client over keep-alive connections, far cheaper per request than
aiohttp's or httpx's clients, so that the server, not the client, is what saturates. Each request
is a distinct prompt (the token counter's cache does not flatter the figure); rate limits are on
but far above the load; no latency or faults. Prints one JSON line: requests/s, latency
percentiles, errors, the server's CPU share and what its /stats counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from llm_api_client.simulator import Simulator

HEADER_END = b"\r\n\r\n"


def build_requests(port: int, distinct: int) -> list[bytes]:
    """Pre-encoded requests, so the client spends its CPU on I/O rather than on JSON."""
    out = []
    for i in range(distinct):
        body = json.dumps(
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You are a terse assistant."},
                    {"role": "user", "content": f"Summarise document {i} in one line, please."},
                ],
                "max_tokens": 16,
            }
        ).encode()
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


class Connection:
    """One keep-alive connection sending requests back to back until the deadline."""

    def __init__(self, requests: list[bytes], offset: int) -> None:
        self.requests = requests
        self.offset = offset
        self.latencies: list[float] = []
        self.errors = 0

    async def run(self, port: int, deadline: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            i = self.offset
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(self.requests[i % len(self.requests)])
                status = await self._read_response(reader)
                self.latencies.append(time.perf_counter() - start)
                self.errors += status != 200
                i += 1
        finally:
            writer.close()
            await writer.wait_closed()

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> int:
        head = await reader.readuntil(HEADER_END)
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        return status


async def load(port: int, seconds: float, connections: int, distinct: int) -> dict[str, Any]:
    requests = build_requests(port, distinct)
    clients = [Connection(requests, k * distinct // connections) for k in range(connections)]
    await asyncio.gather(*(c.run(port, time.perf_counter() + 0.5) for c in clients))  # warm-up
    for c in clients:
        c.latencies.clear()
        c.errors = 0
    start = time.perf_counter()
    await asyncio.gather(*(c.run(port, start + seconds) for c in clients))
    elapsed = time.perf_counter() - start
    latencies = sorted(x for c in clients for x in c.latencies)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "requests_per_second": round(len(latencies) / elapsed),
        "requests": len(latencies),
        "errors": sum(c.errors for c in clients),
        "seconds": round(elapsed, 2),
        "connections": connections,
        "latency_ms_p50": round(quantiles[49] * 1000, 2),
        "latency_ms_p99": round(quantiles[98] * 1000, 2),
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--distinct", type=int, default=10_000, help="distinct prompts")
    # Limits far above the load: every answer carries x-ratelimit-* headers (part of the cost
    # measured) and nothing is rejected. Pass 0 to serve without limits.
    parser.add_argument("--rpm", type=float, default=1e9)
    parser.add_argument("--tpm", type=float, default=1e12)
    args = parser.parse_args(argv)
    with Simulator(process=True, rpm=args.rpm or None, tpm=args.tpm or None) as sim:
        assert sim.port is not None and sim.pid is not None
        cpu_before = process_cpu_seconds(sim.pid)
        result = asyncio.run(load(sim.port, args.seconds, args.connections, args.distinct))
        cpu = process_cpu_seconds(sim.pid) - cpu_before
        stats = sim.stats()
    # The server's CPU over the whole run (warm-up included, like server_admitted): a share near
    # 1.0 means the server saturated its core; requests per CPU-second is its one-core capacity.
    result["server_cpu_share"] = round(cpu / (float(result["seconds"]) + 0.5), 2)
    result["server_requests_per_cpu_second"] = round(stats["admitted"] / cpu) if cpu else None
    result["server_admitted"] = stats["admitted"]
    result["server_peak_in_flight"] = stats["peak_in_flight"]
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
