"""Numeric command-line options, checked at parse time by the rules ``APIClient`` uses.

A value its rule refuses is an argparse error: the usage line, the message, exit status 2 and
no traceback, as for any other usage error.

    add("--processes", type=number(PROCESSES), default=None)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from llm_api_client._settings import PER_MINUTE, Number

__all__ = [
    "COUNT",
    "FRACTION",
    "HTTP_ERROR_STATUS",
    "NON_NEGATIVE",
    "NON_NEGATIVE_INT",
    "PORT",
    "DefaultsFormatter",
    "add_log_level",
    "add_quiet",
    "add_rate_limits",
    "configure_logging",
    "model_limit",
    "number",
]

# Rules of the simulator's and the demo's options (the client's are in ``_settings``).
COUNT = Number(integer=True, minimum=1)
NON_NEGATIVE = Number(minimum=0)
NON_NEGATIVE_INT = Number(integer=True, minimum=0)
FRACTION = Number(minimum=0, maximum=1)
PORT = Number(integer=True, minimum=0, maximum=65535)
HTTP_ERROR_STATUS = Number(integer=True, minimum=400, maximum=599)


def number(rule: Number) -> Callable[[str], float]:
    """An argparse ``type``: ``text`` as an int (or, unless ``rule.integer``, a float), checked."""

    def parse(text: str) -> float:
        value = _parse(text, rule.integer)
        if value is None or not rule.allows(value):
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, not {text!r}")
        return value

    return parse


def _parse(text: str, integer: bool) -> float | None:
    for kind in (int,) if integer else (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


# ------------------------------------------------------------------ flags shared by commands
# One spelling per setting in every command: the long form is the Python API's parameter name,
# with a short alias where one is common (--rpm). ``DefaultsFormatter`` ends each help with the
# default.

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class DefaultsFormatter(argparse.HelpFormatter):
    """Ends a flag's help with ``(default: <value>)``.

    A flag whose default is ``None`` says in its own help what happens then (``(default:
    automatic)``); a switch (``--quiet``, ``--no-sanitize``) is off unless given.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unshown = action.default in (None, argparse.SUPPRESS) or action.nargs == 0
        if "(default" in text or unshown or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def add_rate_limits(
    parser: argparse.ArgumentParser,
    rule: Number,
    *,
    requests: int | None,
    tokens: int | None,
    whose: str,
) -> None:
    """``--max-requests-per-minute``/``--rpm`` and ``--max-tokens-per-minute``/``--tpm``."""
    add = parser.add_argument
    add(
        "--max-requests-per-minute",
        "--rpm",
        dest="max_requests_per_minute",
        type=number(rule),
        default=requests,
        metavar="N",
        help=f"requests per minute {whose}",
    )
    add(
        "--max-tokens-per-minute",
        "--tpm",
        dest="max_tokens_per_minute",
        type=number(rule),
        default=tokens,
        metavar="N",
        help=f"tokens (prompt + maximum output) per minute {whose}",
    )


def add_quiet(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=what)


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="WARNING",
        help="what the library logs on stderr",
    )


def configure_logging(level: str) -> None:
    """Show the library's log records of ``level`` and above on stderr."""
    import logging

    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("llm_api_client").setLevel(level)


def model_limit(text: str) -> tuple[str, dict[str, float]]:
    """An argparse ``type`` for ``--model-limit MODEL=RPM[:TPM]``: one entry of ``model_limits``."""
    model, _, limits = text.rpartition("=")
    values = [_parse(part, integer=False) for part in limits.split(":")]
    if not model or not 1 <= len(values) <= 2 or not all(map(PER_MINUTE.allows, values)):
        raise argparse.ArgumentTypeError(
            f"must be MODEL=RPM or MODEL=RPM:TPM, each {PER_MINUTE.describe()}, not {text!r}"
        )
    names = ("max_requests_per_minute", "max_tokens_per_minute")
    checked = [value for value in values if value is not None]  # all of them, as allowed
    return model, dict(zip(names, checked, strict=False))
