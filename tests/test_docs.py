"""The documentation site: every page exists, it builds with warnings as errors, examples run.

Examples cannot rot because they are executed here:

* every ``.. code-block:: python`` of a page in ``docs/*.rst`` runs, in page order, in one
  namespace per page (a later block may use a name an earlier one defined), so the pages read
  like a session at a Python prompt. Pages start the bundled ``Simulator`` themselves and pass
  ``api_base=sim.base_url``; nothing leaves 127.0.0.1. A block with ``:class: not-run`` (real
  providers, which need a key and the network) is only compiled;
* every ``llm-api-client ...`` command line in a ``.. code-block:: bash`` block is parsed with
  the real argument parser, and every option of every subcommand must be documented in
  ``cli.rst``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

REQUIRED_PAGES = (
    "index",
    "getting_started",
    "usage",
    "configuration",
    "api",
    "architecture",
    "cli",
    "simulator",
    "benchmarks",
    "ray",
)

_DIRECTIVE = re.compile(
    r"^(?P<indent>\s*)\.\. (?:code-block|code|sourcecode)::\s*(?P<lang>\S+)\s*$"
)
_OPTION = re.compile(r"^\s*:(?P<name>[\w-]+):\s*(?P<value>.*)$")


@dataclass(frozen=True)
class Block:
    """One code block of a page: where it starts, its language, its options, its code."""

    page: str
    line: int  # 1-based line of the directive
    language: str
    options: dict[str, str]
    code: str

    @property
    def runs(self) -> bool:
        return "not-run" not in self.options.get("class", "").split()

    @property
    def where(self) -> str:
        return f"docs/{self.page}.rst:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The ``code-block`` directives of a reStructuredText page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        i += 1
        if match is None:
            continue
        start, depth = i, len(match["indent"])
        options: dict[str, str] = {}
        while i < len(lines) and (option := _OPTION.match(lines[i])):
            options[option["name"]] = option["value"].strip()
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > depth):
            body.append(lines[i])
            i += 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(Block(path.stem, start, match["lang"], options, code))
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def rst_pages() -> list[Path]:
    return sorted(DOCS.glob("*.rst"))


def python_pages() -> list[str]:
    return [p.stem for p in rst_pages() if any(b.language == "python" for b in code_blocks(p))]


# ------------------------------------------------------------------------------- the pages


def test_every_required_page_exists() -> None:
    missing = [
        page
        for page in REQUIRED_PAGES
        if not (DOCS / f"{page}.rst").is_file() and not (DOCS / f"{page}.md").is_file()
    ]
    assert missing == []
    assert (DOCS / "conf.py").is_file()


def test_the_block_parser_reads_options_and_bodies(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        "Title\n=====\n\n.. code-block:: python\n   :class: not-run\n\n   x = 1\n\n"
        "   y = 2\n\nText.\n\n.. code-block:: bash\n\n   llm-api-client demo\n"
    )
    python, bash = code_blocks(page)
    assert (python.language, python.runs, python.code) == ("python", False, "x = 1\n\ny = 2\n")
    assert (bash.language, bash.runs, bash.code) == ("bash", True, "llm-api-client demo\n")


@pytest.fixture(scope="module")
def example_failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Run every page's examples in one fresh interpreter: page -> traceback, or None if fine.

    A subprocess runs them the way a reader would (a script, not inside pytest), and keeps what
    they leave behind (litellm's pooled connections, forked workers) out of the other tests.
    """
    results = tmp_path_factory.mktemp("docs") / "examples.json"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    process = subprocess.run(
        [sys.executable, __file__, str(results), *python_pages()],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},  # this checkout's package, wherever installed
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert results.is_file(), process.stderr[-5000:]
    failures: dict[str, str | None] = json.loads(results.read_text())
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("page", python_pages())
def test_python_examples_run_against_the_simulator(
    page: str, example_failures: dict[str, str | None]
) -> None:
    assert example_failures[page] is None, example_failures[page]


def run_pages(argv: list[str]) -> None:
    """The runner: ``<results.json> <page>...``; each page's blocks share one namespace."""
    results, pages = Path(argv[0]), argv[1:]
    failures = {}
    for page in pages:
        with contextlib.redirect_stdout(io.StringIO()):
            failures[page] = _run_page(page)
    results.write_text(json.dumps(failures))


def _run_page(page: str) -> str | None:
    namespace: dict[str, Any] = {"__name__": f"docs_{page}"}
    try:
        for block in code_blocks(DOCS / f"{page}.rst"):
            if block.language == "python":
                code = compile(block.code, block.where, "exec")
                if block.runs:
                    exec(code, namespace)
    except BaseException:
        return traceback.format_exc(limit=-8)
    finally:
        _release(namespace)
    return None


def _release(namespace: dict[str, Any]) -> None:
    """Stop what an example left running (a failed example never reaches its cleanup)."""
    from llm_api_client import APIClient, Simulator

    for value in namespace.values():
        if isinstance(value, APIClient):
            value.close()
        elif isinstance(value, Simulator):
            value.stop()


# ---------------------------------------------------------------------------------- the CLI


def _parser() -> argparse.ArgumentParser:
    from llm_api_client.cli.main import build_parser

    return build_parser()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the CLI has no subcommands")


def command_lines() -> Iterator[tuple[str, str]]:
    """``(where, command line)`` for each ``llm-api-client`` line of the pages' bash blocks."""
    for path in rst_pages():
        for block in code_blocks(path):
            if block.language not in ("bash", "console", "shell"):
                continue
            for line in block.code.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("llm-api-client "):
                    yield block.where, line.split(" #")[0].removesuffix(" &")


def test_documented_command_lines_parse() -> None:
    parser = _parser()
    lines = list(command_lines())
    assert len(lines) >= 3  # one per subcommand at least
    for where, line in lines:
        argv = shlex.split(line)[1:]
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 0, f"{where}: {line!r} does not parse"


@pytest.mark.parametrize("command", ["demo", "run", "simulate"])
def test_every_cli_option_is_documented(command: str) -> None:
    page = (DOCS / "cli.rst").read_text(encoding="utf-8")
    subparser = _subcommands(_parser())[command]
    options = [
        max(action.option_strings, key=len)
        for action in subparser._actions
        if action.option_strings and "--help" not in action.option_strings
    ]
    assert [option for option in options if f"``{option}" not in page] == []


# -------------------------------------------------------------------------------- the build


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    for module in ("sphinx", "furo", "myst_parser"):
        pytest.importorskip(module)
    out = tmp_path / "html"
    options = ["-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", *options],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert build.returncode == 0, build.stderr[-5000:]
    assert [page for page in REQUIRED_PAGES if not (out / f"{page}.html").is_file()] == []
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("make_requests_with_retries", "APIUsageTracker", "BatchStream", "Simulator"):
        assert name in api


if __name__ == "__main__":
    run_pages(sys.argv[1:])
