"""One set of flags: the same name for the same setting in every command, each with its help.

Long forms are the Python API's parameter names (``--max-requests-per-minute``), short
aliases are allowed (``--rpm``), every flag's help states its default, descriptions are plain
text, and ``--version`` answers.
"""

from __future__ import annotations

import argparse
import logging

import pytest

import llm_api_client
from llm_api_client.cli import main as cli_main
from llm_api_client.cli import run as run_module

COMMANDS = ("demo", "run", "simulate")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli_main.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def flags(command: str) -> list[argparse.Action]:
    return [a for a in subparsers()[command]._actions if a.option_strings and a.dest != "help"]


@pytest.mark.parametrize(
    ("setting", "commands"),
    [
        ("--max-requests-per-minute", COMMANDS),
        ("--max-tokens-per-minute", COMMANDS),
        ("--rpm", COMMANDS),
        ("--tpm", COMMANDS),
        ("--processes", ("demo", "run")),
        ("--quiet", ("demo", "run")),
        ("-q", ("demo", "run")),
        ("--log-level", ("demo", "run")),
        ("--latency-ms", ("demo", "simulate")),
    ],
)
def test_a_setting_has_one_spelling_in_every_command(setting: str, commands: tuple[str, ...]):
    for command in commands:
        names = {name for action in flags(command) for name in action.option_strings}
        assert setting in names, (command, setting)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_help_that_states_its_default(command: str) -> None:
    text = subparsers()[command].format_help()
    for action in flags(command):
        assert action.help, action.option_strings
        switch = action.nargs == 0
        if not (switch or action.required):
            help_text = action.help % vars(action) if "%(" in action.help else action.help
            shown = "(default" in help_text or action.default is not None
            assert shown, f"{command} {action.option_strings[0]}: no default in its help"
    assert "(default: None)" not in text
    assert "``" not in text and "`" not in text


def test_defaults_are_appended_to_help(capsys: pytest.CaptureFixture[str]) -> None:
    text = subparsers()["run"].format_help()
    assert "(default: 10000)" in text  # --max-requests-per-minute
    assert "(default: WARNING)" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"llm-api-client {llm_api_client.__version__}"


def test_run_passes_its_client_flags_to_the_client() -> None:
    argv = ["run", "in.jsonl", "-o", "out.jsonl", "--max-workers", "7", "--rpm", "600"]
    argv += ["--input-tokens-per-minute", "1000", "--output-tokens-per-minute", "200"]
    args = cli_main.build_parser().parse_args(argv)
    with run_module.make_client(args, max_cost=1.5) as client:
        assert client.details["max_workers"] == 7
        assert client.max_requests_per_minute == 600
        assert client.max_cost == 1.5
        assert client.limits.input_tokens_per_minute == 1000
        assert client.limits.output_tokens_per_minute == 200


def test_run_sanitize_and_log_level_flags() -> None:
    parse = cli_main.build_parser().parse_args
    assert parse(["run", "in", "-o", "out"]).sanitize is True
    assert parse(["run", "in", "-o", "out", "--no-sanitize"]).sanitize is False
    assert parse(["run", "in", "-o", "out", "--log-level", "debug"]).log_level == "DEBUG"
    logger = logging.getLogger("llm_api_client")
    before = logger.level
    try:
        from llm_api_client.cli.options import configure_logging

        configure_logging("ERROR")
        assert logger.level == logging.ERROR
    finally:
        logger.setLevel(before)
