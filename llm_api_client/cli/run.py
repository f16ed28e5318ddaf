"""``llm-api-client run``: send a JSONL batch file, write results as they arrive, resume on rerun.

    llm-api-client run requests.jsonl --output results.jsonl --max-requests-per-minute 500
    cat requests.jsonl | llm-api-client run - --output results.jsonl --max-cost 20
    llm-api-client run requests.jsonl --output results.jsonl --dry-run

The input is read as a stream and handed to ``APIClient.stream``, which pulls requests lazily;
each result is written to the output at once. Rerunning with the same ``--output`` skips every
row already answered and retries the rest. The first Ctrl-C or SIGTERM stops dispatch and lets
the requests in flight finish and be written; a second one exits at once. ``--dry-run`` prints
what the file will send, cost and take, and sends nothing (``jobs.projection``). One run at a
time writes an output (``jobs.lock``); ``-`` reads standard input (``jobs.stdin``);
``--max-cost`` covers the whole output across resumes (``jobs.spend``).

This module is the wiring: options to a ``JobOptions``, a client, exit codes. The run itself is
``llm_api_client.jobs.driver``; formats and durability, ``llm_api_client.jobs.batchfile``.

Exit codes: 0 every row answered (dry run: every row can be sent); 1 some rows failed, were
malformed or were not started (spend cap, timeout); 2 a usage error (a missing file, an option
value out of range, a model --max-cost cannot price); 3 another run holds the output; 128 +
signal number when interrupted (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from llm_api_client import _constants, _settings
from llm_api_client.cli.options import (
    add_log_level,
    add_quiet,
    add_rate_limits,
    configure_logging,
    model_limit,
    number,
)
from llm_api_client.jobs.driver import BatchJob, JobOptions
from llm_api_client.jobs.lock import OutputBusyError
from llm_api_client.jobs.stdin import input_file

# Exit status when another live run holds the output.
EXIT_OUTPUT_BUSY = 3

_DESCRIPTION = (
    "Send a JSONL batch file (OpenAI Batch API format or plain litellm request dicts) at the "
    "given rate limits, writing each result to the output as it arrives. Rerun the same "
    "command to resume: answered rows are never sent again. Exit status: 0 all answered, "
    "1 some rows failed or were not started, 2 usage error, 3 another run holds the output."
)

# Options that fill in what a row does not set.
_DEFAULT_KEYS = ("api_base", "api_key", "model")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="send a JSONL batch file (OpenAI Batch format or litellm dicts), resumable",
        description=_DESCRIPTION,
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_command)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_files(parser)
    _add_limits(parser)
    _add_cost(parser)
    _add_request_defaults(parser)
    add = parser.add_argument
    add("--no-sanitize", dest="sanitize", action="store_false", help=_NO_SANITIZE)
    add_quiet(parser, "print only the final one-line summary")
    add_log_level(parser)
    add(
        "--transport",
        choices=_constants.TRANSPORTS,
        default="auto",
        help="auto: plain OpenAI-compatible chat without litellm, the rest through it",
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


_NO_SANITIZE = (
    "send rows as written: keep parameters the model does not support and do not truncate "
    "conversations to its context window"
)


def _add_files(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("input", help="requests, one JSON object per line; - reads standard input")
    add("-o", "--output", required=True, help="results JSONL (appended; reused to resume)")
    add("--failures", help="failed requests, re-runnable (default: <output>.failures.jsonl)")
    add("--dry-run", action="store_true", help=_DRY_RUN)


_DRY_RUN = (
    "validate every line and print the requests, tokens, projected cost and time at the "
    "limits; send nothing"
)


def _add_limits(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    per_minute = number(_settings.PER_MINUTE)
    add_rate_limits(
        parser,
        _settings.PER_MINUTE,
        requests=_constants.DEFAULT_MAX_REQUESTS_PER_MINUTE,
        tokens=_constants.DEFAULT_MAX_TOKENS_PER_MINUTE,
        whose="the client paces itself to",
    )
    for kind in ("input", "output"):
        add(
            f"--{kind}-tokens-per-minute",
            type=per_minute,
            default=None,
            metavar="N",
            help=f"{kind} tokens per minute, for providers that limit them apart "
            "(default: no such limit)",
        )
    add(
        "--model-limit",
        type=model_limit,
        action="append",
        metavar="MODEL=RPM[:TPM]",
        help="a model's own limits, under the overall ones; repeat for several models "
        "(default: none)",
    )
    workers = number(_settings.WORKERS)
    add("--max-workers", type=workers, metavar="N", help=_MAX_WORKERS)
    processes = number(_settings.PROCESSES)
    add("--processes", type=processes, metavar="N", help="worker processes (default: automatic)")
    retries, timeout = number(_settings.RETRIES), number(_settings.BATCH_TIMEOUT)
    add("--max-retries", type=retries, default=2, metavar="N", help="retries per request")
    timeout_help = "global timeout for the batch (default: none)"
    add("--timeout", type=timeout, metavar="SECONDS", help=timeout_help)


_MAX_WORKERS = (
    "requests in flight (default: enough to reach the rate limit at the latency observed)"
)


def _add_cost(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--max-cost", type=number(_settings.MAX_COST), metavar="USD", help=_MAX_COST)
    add("--price", type=_price, action="append", metavar="MODEL=IN:OUT", help=_PRICE)


_MAX_COST = (
    "spend cap in USD for the whole output: what its answered rows cost counts, so a rerun "
    "with the same cap sends nothing more (default: no cap)"
)
_PRICE = (
    "a model's price in USD per million input and output tokens, for a model litellm's price "
    "map lacks; repeat for several models (default: litellm's prices)"
)


def _price(text: str) -> tuple[str, float, float]:
    from llm_api_client.jobs.spend import parse_price

    try:
        return parse_price(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_request_defaults(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--api-base", help="api_base for lines that set none (default: the provider's)")
    add(
        "--api-key",
        help="api_key for lines that set none, never written anywhere "
        "(default: the provider's environment variable)",
    )
    add("--model", help="model for lines that set none (default: none)")


def make_client(args: argparse.Namespace, max_cost: float | None = None) -> Any:
    """The ``APIClient`` for a run, capped at ``max_cost`` (what the output's answers left of
    ``--max-cost``). Tests replace this with a fake that has ``stream``."""
    from llm_api_client import APIClient

    return APIClient(
        max_requests_per_minute=args.max_requests_per_minute,
        max_tokens_per_minute=args.max_tokens_per_minute,
        max_workers=args.max_workers,
        processes=args.processes,
        max_cost=max_cost,
        input_tokens_per_minute=args.input_tokens_per_minute,
        output_tokens_per_minute=args.output_tokens_per_minute,
        transport=args.transport,
        cache=args.cache,
        cache_mode=args.cache_mode,
        rate_limit_store=args.rate_limit_store,
        rate_limit_key=args.rate_limit_key,
        model_limits=dict(args.model_limit or ()),
    )


def run_command(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    if args.price:
        from llm_api_client.jobs.spend import set_prices

        set_prices(args.price)
    folder = os.path.dirname(os.path.abspath(args.output))
    with input_file(args.input, folder if os.path.isdir(folder) else None) as path:
        job = BatchJob(job_options(args, path))
        if args.dry_run:  # reads the output, never writes it: no lock
            return _usage_error(job.usage_problem()) or _dry_run(job.options, args)
        try:
            # The lock before the price check (which imports litellm: seconds), so a second
            # run on the output fails at once.
            return _usage_error(job.path_problem()) or _locked_run(job, args)
        except OutputBusyError as exc:
            print(f"llm-api-client run: {exc}", file=sys.stderr)
            return EXIT_OUTPUT_BUSY


def _locked_run(job: BatchJob, args: argparse.Namespace) -> int:
    with job.lock:
        return _usage_error(job.price_problem()) or _run(job, args)


def _usage_error(problem: str | None) -> int:
    if problem:
        print(f"llm-api-client run: {problem}", file=sys.stderr)
        return 2
    return 0


def _run(job: BatchJob, args: argparse.Namespace) -> int:
    # make_client is looked up at call time: tests replace it.
    return job.run(lambda max_cost: make_client(args, max_cost)).exit_code()


def _dry_run(options: JobOptions, args: argparse.Namespace) -> int:
    from llm_api_client.jobs.projection import Limits, dry_run

    limits = Limits(
        args.max_requests_per_minute,
        args.max_tokens_per_minute,
        args.input_tokens_per_minute,
        args.output_tokens_per_minute,
    )
    return dry_run(options, limits, sys.stdout)


def job_options(args: argparse.Namespace, input_path: str) -> JobOptions:
    return JobOptions(
        input=input_path,
        output=args.output,
        failures=args.failures,
        defaults={key: getattr(args, key) for key in _DEFAULT_KEYS if getattr(args, key)},
        max_retries=args.max_retries,
        timeout=args.timeout,
        max_cost=args.max_cost,
        quiet=args.quiet,
        sanitize=args.sanitize,
    )
