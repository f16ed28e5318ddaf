"""Entry point of the ``llm-api-client`` console script.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``func`` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from llm_api_client.cli.options import DefaultsFormatter

SUBCOMMANDS = ("demo", "run", "simulate")


def build_parser() -> argparse.ArgumentParser:
    from llm_api_client import __version__

    parser = argparse.ArgumentParser(
        prog="llm-api-client",
        description="Send large batches of LLM calls at your provider's rate limit.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"llm_api_client.cli.{name}")
        module.register(subparsers)
    for command in subparsers.choices.values():
        # Every flag's help ends with its default, written once here rather than in each help.
        command.formatter_class = DefaultsFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
