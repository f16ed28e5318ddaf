"""``llm-api-client simulate``: run the OpenAI-compatible simulator in the foreground.

    llm-api-client simulate --port 8000 --rpm 60 --tpm 10000 --latency-ms 200 --fail-rate 0.01

Serves until Ctrl-C or SIGTERM. Point litellm at it with ``api_base=http://127.0.0.1:8000/v1``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from llm_api_client import _settings
from llm_api_client.cli.options import (
    COUNT,
    FRACTION,
    HTTP_ERROR_STATUS,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    PORT,
    add_rate_limits,
    number,
)
from llm_api_client.errors import ConfigurationError
from llm_api_client.simulator.config import SimulatorConfig


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = SimulatorConfig()
    parser = subparsers.add_parser(
        "simulate",
        help="run the OpenAI-compatible simulator (rate limits, faults, stats)",
        description="Serve POST /v1/chat/completions (plain and streamed), POST /v1/embeddings, "
        "GET /v1/models, GET /stats, POST /reset.",
    )
    add = parser.add_argument
    non_negative, fraction = number(NON_NEGATIVE), number(FRACTION)
    add("--host", default=defaults.host, help="address to listen on")
    port_help = "port; 0 picks a free one"
    add("--port", type=number(PORT), default=8000, help=port_help)
    whose = "the simulator admits; 0: unlimited (default: unlimited)"
    add_rate_limits(parser, NON_NEGATIVE, requests=None, tokens=None, whose=whose)
    add(
        "--window-seconds",
        type=number(_settings.POSITIVE_SECONDS),
        default=defaults.window_seconds,
        help="limits are enforced over windows this long",
    )
    add("--latency-ms", type=non_negative, default=0.0, help="delay before each answer")
    add("--jitter-ms", type=non_negative, default=0.0, help="uniform +/- jitter on the delay")
    add("--fail-rate", type=fraction, default=0.0, help="fraction of requests answered 500")
    add(
        "--fail-status",
        type=number(HTTP_ERROR_STATUS),
        default=defaults.fail_status,
        help="status of those failures",
    )
    add("--drop-rate", type=fraction, default=0.0, help="fraction of connections closed unanswered")
    add("--hang-rate", type=fraction, default=0.0, help="fraction of requests never answered")
    add(
        "--context-window",
        type=number(NON_NEGATIVE_INT),
        default=defaults.context_window,
        help="prompt + max_tokens above this draws 400; 0 disables",
    )
    add(
        "--completion-tokens",
        type=number(COUNT),
        default=defaults.completion_tokens,
        help="answer length in tokens, at most max_tokens",
    )
    seed_help = "seed of the fault and jitter draws (default: a new one each run)"
    add("--seed", type=int, default=None, help=seed_help)
    add(
        "--stream-token-delay-ms",
        type=non_negative,
        default=defaults.stream_token_delay_ms,
        help="streamed answers: delay between two output tokens",
    )
    add(
        "--embedding-dimensions",
        type=number(COUNT),
        default=defaults.embedding_dimensions,
        help="length of the vectors /v1/embeddings returns",
    )
    add(
        "--api-key",
        default=None,
        help="answer 401 to requests without this bearer key (default: any key is accepted)",
    )
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        rpm=args.max_requests_per_minute,
        tpm=args.max_tokens_per_minute,
        window_seconds=args.window_seconds,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        fail_rate=args.fail_rate,
        fail_status=args.fail_status,
        drop_rate=args.drop_rate,
        hang_rate=args.hang_rate,
        context_window=args.context_window or None,
        completion_tokens=args.completion_tokens,
        seed=args.seed,
        stream_token_delay_ms=args.stream_token_delay_ms,
        embedding_dimensions=args.embedding_dimensions,
        api_key=args.api_key,
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigurationError as exc:
        print(f"llm-api-client simulate: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config))
    except OSError as exc:  # the port is taken, the host is not ours, ...
        print(
            f"llm-api-client simulate: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


async def _serve(config: SimulatorConfig) -> None:
    from llm_api_client.simulator.server import serve_until  # aiohttp only when serving

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready(port: int) -> None:
        limits = f"rpm={config.rpm or 'unlimited'} tpm={config.tpm or 'unlimited'}"
        print(f"simulator listening on http://{config.host}:{port}/v1 ({limits})", flush=True)

    await serve_until(config, stop, ready)
    print("simulator stopped", file=sys.stderr, flush=True)
