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
