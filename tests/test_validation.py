"""Impossible settings are refused up front: ConfigurationError in Python, exit 2 on the CLI.

Each table row is a value that used to pass and fail later (or never), e.g. ``inf`` requests per
minute (failed at the first call), ``0.5`` (every request then failed ``RequestTooLargeError``),
``processes=1.5`` (a raw ``TypeError``), ``timeout=-1`` (acted as 0), ``timeout=nan`` (ignored).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm_api_client import APIClient
from llm_api_client.cli import main as cli_main
from llm_api_client.errors import ConfigurationError, RequestTooLargeError
from tests.fakes import FakeCompletion, chat

REPO_ROOT = Path(__file__).resolve().parent.parent


class CountingCompletion(FakeCompletion):
    """A FakeCompletion that counts its calls (threads of this process only)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        return super().__call__(**kwargs)


# ------------------------------------------------------------------------- the constructor

BAD_SETTINGS = [
    # (setting, value, what the message says it must be)
    ("max_requests_per_minute", math.inf, "a number >= 1 (None: unlimited)"),
    ("max_requests_per_minute", math.nan, "a number >= 1"),
    ("max_requests_per_minute", 0.5, "a number >= 1"),
    ("max_requests_per_minute", 0, "a number >= 1"),
    ("max_requests_per_minute", -1, "a number >= 1"),
    ("max_requests_per_minute", "fast", "a number >= 1"),
    ("max_requests_per_minute", True, "a number >= 1"),
    ("max_tokens_per_minute", 0.5, "a number >= 1"),
    ("max_tokens_per_minute", math.inf, "a number >= 1"),
    ("input_tokens_per_minute", 0, "a number >= 1"),
    ("input_tokens_per_minute", math.nan, "a number >= 1"),
    ("output_tokens_per_minute", -5, "a number >= 1"),
    ("output_tokens_per_minute", math.inf, "a number >= 1"),
    ("max_workers", 0, "an integer >= 1"),
    ("max_workers", 1.5, "an integer >= 1"),
    ("max_workers", 4.0, "an integer >= 1"),
    ("max_workers", True, "an integer >= 1"),
    ("max_delay_seconds", 0, "a number > 0"),
    ("max_delay_seconds", -3, "a number > 0"),
    ("max_delay_seconds", math.nan, "a number > 0"),
    ("max_delay_seconds", math.inf, "a number > 0 (None: wait as long as needed)"),
    ("burst_seconds", 0, "a number > 0"),
    ("burst_seconds", math.inf, "a number > 0"),
    ("burst_seconds", None, "a number > 0"),
    ("max_cost", 0, "a number > 0"),
    ("max_cost", -1, "a number > 0"),
    ("max_cost", math.inf, "a number > 0 (None: no cap)"),
    ("max_cost", math.nan, "a number > 0"),
    ("processes", -1, "an integer >= 0"),
    ("processes", 1.5, "an integer >= 0"),
    ("processes", True, "an integer >= 0"),
    ("processes", "2", "an integer >= 0"),
]


@pytest.mark.parametrize(("name", "value", "must_be"), BAD_SETTINGS)
def test_an_impossible_setting_is_refused_when_the_client_is_made(
    name: str, value: Any, must_be: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        APIClient(**{name: value})

    assert_names(caught.value, name, must_be, value)


def assert_names(error: ConfigurationError, name: str, must_be: str, value: Any) -> None:
    """The message names the setting, what it must be and the value given."""
    message = str(error)
    assert message.startswith(f"{name} must be {must_be}"), message
    assert message.endswith(f", not {value!r}"), message


def test_a_completion_that_cannot_be_called_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="completion must be callable"):
        APIClient(completion="litellm.completion")  # type: ignore[arg-type]


GOOD_SETTINGS = [
    {"max_requests_per_minute": 1, "max_tokens_per_minute": 1},
    {"max_requests_per_minute": 1.5, "max_tokens_per_minute": None},
    {"max_requests_per_minute": None, "input_tokens_per_minute": 1_000},
    {"max_workers": 1, "processes": 0, "max_delay_seconds": None},
    {"max_delay_seconds": 0.01, "burst_seconds": 0.01, "max_cost": 0.0001},
    {"output_tokens_per_minute": 60.5, "max_cost": None, "processes": None},
]


@pytest.mark.parametrize("settings", GOOD_SETTINGS)
def test_edge_values_that_work_are_accepted(settings: dict[str, Any]) -> None:
    with APIClient(**settings) as client:
        assert client.limits.requests_per_minute == settings.get("max_requests_per_minute", 10_000)


def test_a_token_limit_below_one_requests_cost_refuses_that_request_with_both_figures() -> None:
    completion = CountingCompletion()
    with APIClient(60, 1_000, processes=0, completion=completion) as client:
        responses = client.make_requests([chat("hi", max_tokens=5_000), chat("ok", max_tokens=9)])

    error = client.last_errors[0]
    assert isinstance(error, RequestTooLargeError)
    assert "tokens but the limit is 1000 tokens per minute" in str(error)
    assert responses[1] is not None and completion.calls == 1


# ------------------------------------------------------------------------ per-call arguments

BAD_CALL_ARGUMENTS = [
    # (argument, value, what it must be)
    ("max_retries", None, "an integer >= 0"),
    ("max_retries", -1, "an integer >= 0"),
    ("max_retries", 1.5, "an integer >= 0"),
    ("max_retries", True, "an integer >= 0"),
    ("timeout", -1, "a number > 0 (None: no timeout)"),
    ("timeout", 0, "a number > 0"),
    ("timeout", math.nan, "a number > 0"),
    ("timeout", math.inf, "a number > 0"),
    ("timeout", "30", "a number > 0"),
    ("max_workers", 0, "an integer >= 1"),
    ("max_workers", -2, "an integer >= 1"),
    ("max_workers", 2.5, "an integer >= 1"),
]


CALL_CASES = [
    pytest.param(method, name, value, must_be, id=f"{method}-{name}={value!r}")
    for method in ("make_requests", "make_requests_with_retries", "stream", "map")
    for name, value, must_be in BAD_CALL_ARGUMENTS
    if (method, name) != ("make_requests", "max_retries")  # it has no such argument
]


def _run(method: str, client: APIClient, requests: Iterator[dict[str, Any]], **options: Any):
    """Call ``method`` as a user would and consume what it returns."""
    if method == "map":
        return list(client.map(lambda item: item, requests, **options))
    if method == "stream":
        with client.stream(requests, **options) as stream:
            return list(stream)
    return getattr(client, method)(requests, **options)


@pytest.mark.parametrize(("method", "name", "value", "must_be"), CALL_CASES)
def test_an_impossible_call_argument_is_refused_before_anything_is_read_or_sent(
    method: str, name: str, value: Any, must_be: str
) -> None:
    completion = CountingCompletion()
    read: list[int] = []

    def requests() -> Iterator[dict[str, Any]]:
        for i in range(3):
            read.append(i)
            yield chat(f"q{i}")

    with APIClient(processes=0, completion=completion) as client:
        with pytest.raises(ConfigurationError) as caught:
            _run(method, client, requests(), **{name: value})
        assert_names(caught.value, name, must_be, value)
        assert read == [] and completion.calls == 0
        # the client is not left busy: a correct call runs
        assert _run(method, client, iter([chat("after")]))


# ------------------------------------------------------------------------ the command line

BAD_OPTIONS = [
    # (argv, option named in the error)
    (["run", "in.jsonl", "-o", "out.jsonl", "--processes", "-1"], "--processes"),
    (["run", "in.jsonl", "-o", "out.jsonl", "--processes", "1.5"], "--processes"),
    (["run", "in.jsonl", "-o", "out.jsonl", "--max-retries", "-1"], "--max-retries"),
    (
        ["run", "in.jsonl", "-o", "out.jsonl", "--max-requests-per-minute", "0"],
        "--max-requests-per-minute",
    ),
    (
        ["run", "in.jsonl", "-o", "out.jsonl", "--max-requests-per-minute", "inf"],
        "--max-requests-per-minute",
    ),
    (
        ["run", "in.jsonl", "-o", "out.jsonl", "--max-tokens-per-minute", "0.5"],
        "--max-tokens-per-minute",
    ),
    (["run", "in.jsonl", "-o", "out.jsonl", "--max-cost", "-1"], "--max-cost"),
    (["run", "in.jsonl", "-o", "out.jsonl", "--max-cost", "nan"], "--max-cost"),
    (["run", "in.jsonl", "-o", "out.jsonl", "--timeout", "-1"], "--timeout"),
    (["run", "in.jsonl", "-o", "out.jsonl", "--timeout", "nan"], "--timeout"),
    (["run", "in.jsonl", "-o", "out.jsonl", "--max-workers", "0"], "--max-workers"),
    (["run", "in", "-o", "out", "--input-tokens-per-minute", "0.5"], "--input-tokens-per-minute"),
    (["run", "in", "-o", "out", "--output-tokens-per-minute", "-1"], "--output-tokens-per-minute"),
    (["run", "in.jsonl", "-o", "out.jsonl", "--rpm", "0"], "--rpm"),
    (["simulate", "--port", "70000"], "--port"),
    (["simulate", "--rpm", "nan"], "--rpm"),
    (["simulate", "--tpm", "-5"], "--tpm"),
    (["simulate", "--window-seconds", "0"], "--window-seconds"),
    (["simulate", "--latency-ms", "-3"], "--latency-ms"),
    (["simulate", "--jitter-ms", "inf"], "--jitter-ms"),
    (["simulate", "--fail-rate", "1.5"], "--fail-rate"),
    (["simulate", "--drop-rate", "-0.1"], "--drop-rate"),
    (["simulate", "--hang-rate", "nan"], "--hang-rate"),
    (["simulate", "--fail-status", "200"], "--fail-status"),
    (["simulate", "--context-window", "-1"], "--context-window"),
    (["simulate", "--completion-tokens", "0"], "--completion-tokens"),
    (["demo", "--requests", "0"], "--requests"),
    (["demo", "--rpm", "0.5"], "--rpm"),
    (["demo", "--tpm", "inf"], "--tpm"),
    (["demo", "--processes", "-1"], "--processes"),
    (["demo", "--latency-ms", "nan"], "--latency-ms"),
]


@pytest.mark.parametrize(("argv", "option"), BAD_OPTIONS)
def test_an_impossible_option_is_a_usage_error(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Parsing only: with the check missing, nothing is started (no server, no batch).
    with pytest.raises(SystemExit) as caught:
        cli_main.build_parser().parse_args(argv)

    assert caught.value.code == 2
    err = capsys.readouterr().err
    named = err.split("error: argument ", 1)[1].split(": ", 1)[0]  # "--rpm" or "--long/--rpm"
    assert option in named.split("/") and "must be " in err and "usage:" in err


GOOD_OPTIONS = [
    ["run", "in.jsonl", "-o", "out.jsonl", "--processes", "0", "--max-retries", "0"],
    ["run", "in.jsonl", "-o", "out.jsonl", "--max-requests-per-minute", "1", "--timeout", "0.5"],
    ["run", "in.jsonl", "-o", "out.jsonl", "--max-cost", "0.01", "--max-tokens-per-minute", "1"],
    ["simulate", "--port", "0", "--rpm", "0", "--fail-rate", "1", "--context-window", "0"],
    ["simulate", "--fail-status", "429", "--latency-ms", "0", "--window-seconds", "0.5"],
    ["demo", "--requests", "1", "--rpm", "1", "--processes", "0", "--latency-ms", "0"],
]


@pytest.mark.parametrize("argv", GOOD_OPTIONS)
def test_edge_options_that_work_are_accepted(argv: list[str]) -> None:
    args = cli_main.build_parser().parse_args(argv)

    assert callable(args.func)


def test_the_run_options_keep_their_types() -> None:
    args = cli_main.build_parser().parse_args(
        ["run", "in.jsonl", "-o", "o", "--max-requests-per-minute", "3000", "--timeout", "60"]
    )

    assert (args.max_requests_per_minute, args.processes, args.max_retries) == (3000, None, 2)
    assert isinstance(args.max_requests_per_minute, int) and args.timeout == 60


def test_the_installed_command_exits_2_without_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}\n')
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "llm_api_client", "run", str(data), "-o", "out.jsonl"]

    done = subprocess.run(
        [*command, "--processes", "-1"], env=env, cwd=tmp_path, capture_output=True, text=True
    )

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "argument --processes: must be an integer >= 0, not '-1'" in done.stderr
    assert not (tmp_path / "out.jsonl").exists()
