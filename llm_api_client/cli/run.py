"""``llm-api-client run``: send a JSONL batch file, write results as they arrive, resume on rerun.

    llm-api-client run requests.jsonl --output results.jsonl --max-requests-per-minute 500

The input is read as a stream and handed to ``APIClient.stream``, which pulls requests lazily;
each result is written to the output at once. Rerunning with the same ``--output`` skips every
``custom_id`` already answered and retries the rest. The first Ctrl-C or SIGTERM stops dispatch
and lets the requests in flight finish and be written; a second one exits at once.

This module is the wiring: options to a ``JobOptions``, a client, exit codes. The run itself is
``llm_api_client.jobs.driver``; formats and durability, ``llm_api_client.jobs.batchfile``.

Exit codes: 0 every row answered; 1 some rows failed, were malformed or were not started (spend
cap, timeout); 2 a usage error (a missing file, an option value out of range); 128 + signal number
when interrupted (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llm_api_client import _constants, _settings
from llm_api_client.cli.options import number
from llm_api_client.jobs.driver import BatchJob, JobOptions

# Options that fill in what a row does not set.
_DEFAULT_KEYS = ("api_base", "api_key", "model")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="send a JSONL batch file (OpenAI Batch format or litellm dicts), resumable",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_command)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("input", help="requests, one JSON object per line")
    add("-o", "--output", required=True, help="results JSONL (appended; reused to resume)")
    add("--failures", help="failed requests, re-runnable (default: <output>.failures.jsonl)")
    per_minute = number(_settings.PER_MINUTE)
    rpm, tpm = _constants.DEFAULT_MAX_REQUESTS_PER_MINUTE, _constants.DEFAULT_MAX_TOKENS_PER_MINUTE
    add("--max-requests-per-minute", type=per_minute, default=rpm)
    add("--max-tokens-per-minute", type=per_minute, default=tpm)
    add(
        "--processes",
        type=number(_settings.PROCESSES),
        default=None,
        help="worker processes (default: automatic)",
    )
    retries, timeout = number(_settings.RETRIES), number(_settings.BATCH_TIMEOUT)
    add("--max-retries", type=retries, default=2, help="retries per request (default: 2)")
    add("--timeout", type=timeout, default=None, help="global timeout for the batch, seconds")
    add("--max-cost", type=number(_settings.MAX_COST), metavar="USD", help="spend cap in USD")
    add("--quiet", action="store_true", help="print only the final one-line summary")
    add("--api-base", help="api_base for lines that set none")
    add("--api-key", help="api_key for lines that set none (never written anywhere)")
    add("--model", help="model for lines that set none")
    add(
        "--transport",
        choices=_constants.TRANSPORTS,
        default="auto",
        help="auto: plain OpenAI-compatible chat without litellm, the rest through it (default)",
    )
    add(
        "--rate-limit-store",
        metavar="URL",
        default=None,
        help="share the quota through Redis: redis://HOST:PORT/DB, rediss://..., unix:///path"
        " (default: $LLM_API_CLIENT_RATE_LIMIT_STORE, else this run's own quota)",
    )
    add("--rate-limit-key", metavar="NAME", default="default", help="the quota's name there")
    _add_cache_arguments(parser)


def _add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache",
        metavar="PATH",
        help="SQLite response cache: rows answered before are answered from it, not sent "
        "(default: none)",
    )
    parser.add_argument(
        "--cache-mode",
        choices=_constants.CACHE_MODES,
        default="use",
        help="use: look up and store; refresh: send all and store; off (default: use)",
    )


def make_client(args: argparse.Namespace) -> Any:
    """The ``APIClient`` for a run (tests replace this with a fake that has ``stream``)."""
    from llm_api_client import APIClient

    return APIClient(
        max_requests_per_minute=args.max_requests_per_minute,
        max_tokens_per_minute=args.max_tokens_per_minute,
        processes=args.processes,
        max_cost=args.max_cost,
        transport=args.transport,
        cache=args.cache,
        cache_mode=args.cache_mode,
        rate_limit_store=args.rate_limit_store,
        rate_limit_key=args.rate_limit_key,
    )


def run_command(args: argparse.Namespace) -> int:
    job = BatchJob(job_options(args))
    problem = job.usage_problem()
    if problem:
        print(f"llm-api-client run: {problem}", file=sys.stderr)
        return 2
    # make_client is looked up at call time: tests replace it.
    return job.run(lambda: make_client(args)).exit_code()


def job_options(args: argparse.Namespace) -> JobOptions:
    return JobOptions(
        input=args.input,
        output=args.output,
        failures=args.failures,
        defaults={key: getattr(args, key) for key in _DEFAULT_KEYS if getattr(args, key)},
        max_retries=args.max_retries,
        timeout=args.timeout,
        max_cost=args.max_cost,
        quiet=args.quiet,
    )
