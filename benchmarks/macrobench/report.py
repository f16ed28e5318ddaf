"""The run's header, its tables and its verdicts, as aligned text or Markdown.

``--markdown`` prints the same tables as Markdown, each under a heading that names the command
that produced it, ready to paste into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from macrobench.plan import CPUS
from macrobench.runner import ROOT
from macrobench.verdicts import Verdict

Row = dict[str, Any]


# -- cells and tables ---------------------------------------------------------------------


def fmt(value: Any, spec: str = ".2f", suffix: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) + suffix


def mark(row: Row) -> str:
    c = row.get("check")
    return "-" if c is None else ("✓" if c["ok"] else "✗ " + "; ".join(c["problems"]))


def rounds(values: list[float | None]) -> str:
    """Every round's figure, ✗ for a round that failed."""
    return " ".join("✗" if v is None else f"{v:.0f}" for v in values)


def table(headers: list[str], lines: Iterable[list[str]], *, markdown: bool = False) -> str:
    lines = [line + [""] * (len(headers) - len(line)) for line in lines]
    if markdown:
        return "\n".join(_markdown_line(line) for line in [headers, ["---"] * len(headers), *lines])
    widths = [max(len(x) for x in col) for col in zip(headers, *lines, strict=True)]
    out = [" | ".join(x.ljust(w) for x, w in zip(headers, widths, strict=True))]
    out.append("-|-".join("-" * w for w in widths))
    out += [" | ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(line.rstrip() for line in out)


def _markdown_line(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


# -- the sections' tables -----------------------------------------------------------------


def throughput_lines(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    headers = ["latency", "variant", "threads", "req/s", "rounds req/s", "x seed", "x 1 proc"]
    headers += ["CPU ms/req", "x bare CPU", "x aiohttp CPU", "check"]

    def line(r: Row) -> list[str]:
        key = [f"{r['latency_ms']} ms", r["variant"], str(r["concurrency"])]
        if "error" in r:
            return [*key, "error: " + r["error"]]
        return [
            *key,
            fmt(r["rps"], ".0f"),
            rounds(r["rounds_rps"]),
            fmt(r["x_seed_rps"], ".2f", "x"),
            fmt(r["x_p1_rps"], ".2f", "x"),
            fmt(r["cpu_ms_per_request"], ".2f"),
            fmt(r["x_bare_cpu"], ".2f", "x"),
            fmt(r.get("x_floor_cpu"), ".2f", "x"),
            mark(r),
        ]

    return headers, [line(r) for r in rows]


def ratelimit_lines(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    headers = ["case", "variant", "answered", "429s", "429/req", "steady req/s", "limit req/s"]
    headers += ["share (steady)", "share (overall)", "peak 1-s", "check"]

    def line(r: Row) -> list[str]:
        if "error" in r:
            return [r["case"], r["variant"], "error: " + r["error"]]
        return [
            r["case"],
            r["variant"],
            f"{r['answered']}/{r['requests']}",
            str(r["rejected_429"]),
            fmt(100 * r["share_429"], ".2f", "%"),
            fmt(r["steady_rps"], ".1f"),
            fmt(r["limit_rps"], ".1f"),
            fmt(None if r["steady_share"] is None else 100 * r["steady_share"], ".1f", "%"),
            fmt(100 * r["overall_share"], ".1f", "%"),
            str(r["peak_second"]),
            mark(r),
        ]

    return headers, [line(r) for r in rows]


def stream_lines(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    headers = ["requests", "answered", "req/s", "first result", "peak RSS", "RSS before", "check"]

    def line(r: Row) -> list[str]:
        if "error" in r:
            return [f"{r['requests']:,}", "error: " + r["error"]]
        return [
            f"{r['requests']:,}",
            str(r["answered"]),
            fmt(r["rps"], ".0f"),
            fmt(r["first_result_s"], ".2f", " s"),
            fmt(r["peak_rss_mb"], ".0f", " MB"),
            fmt(r["base_rss_mb"], ".0f", " MB"),
            mark(r),
        ]

    return headers, [line(r) for r in rows]


def verdict_lines(verdicts: list[Verdict]) -> tuple[list[str], list[list[str]]]:
    return ["verdict", "target", "figure"], [[v.status, v.target, v.figure] for v in verdicts]


SECTION_TABLES: list[tuple[str, str, Callable[[list[Row]], tuple[list[str], list[list[str]]]]]] = [
    ("throughput", "Throughput and CPU per request (no limits)", throughput_lines),
    ("ratelimit", "Rate-limit efficiency (per-second enforcement)", ratelimit_lines),
    ("stream", "Streamed batches: time to first result, coordinator peak RSS", stream_lines),
]


# -- the whole report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a run produced, ready to print."""

    command: str
    header: str
    rows: list[Row]
    verdicts: list[Verdict]
    notes: list[str]
    quick: bool


def render(outcome: Outcome, *, markdown: bool = False) -> str:
    """The header, a table per section that ran, the verdicts and what they mean for the exit
    status. In Markdown, each table's heading names the command that produced it."""
    parts = [outcome.header]
    source = f" (`{outcome.command}`)" if markdown else ""
    for key, title, lines in SECTION_TABLES:
        mine = [r for r in outcome.rows if r["section"] == key]
        if mine:
            parts.append(f"### {title}{source}\n\n{table(*lines(mine), markdown=markdown)}")
    if markdown:
        verdicts = table(*verdict_lines(outcome.verdicts), markdown=True)
    else:
        verdicts = "\n".join(v.line() for v in outcome.verdicts)
    parts.append(
        f"### Targets{source}\n\n{verdicts}\n\n" + "\n".join([*outcome.notes, summary(outcome)])
    )
    return "\n\n".join(parts) + "\n"


def summary(outcome: Outcome) -> str:
    missed = sum(not v.met for v in outcome.verdicts)
    tally = f"{len(outcome.verdicts) - missed}/{len(outcome.verdicts)} targets met"
    if outcome.quick:
        return f"{tally}. --quick only reports: exit status 0 whatever the targets say."
    return f"{tally}; exit status {1 if missed else 0}."


# -- where and when -----------------------------------------------------------------------


class RunClock:
    """When a run started and how loaded the machine was; at the end, the run's header line."""

    def __init__(self) -> None:
        self.started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self.load_before = loadavg()
        self._clock = time.perf_counter()

    def header(self, command: str) -> str:
        """One paragraph: the command, when, on which commit and machine, and how loaded."""
        from importlib.metadata import version

        elapsed = time.perf_counter() - self._clock
        return (
            f"`{command}`: started {self.started}, {elapsed:.0f} s, commit {commit()}, on "
            f"{CPUS} CPUs ({cpu_model()}), Python {platform.python_version()}, litellm "
            f"{version('litellm')}; load average {self.load_before} before, {loadavg()} after."
        )


def commit() -> str:
    """This checkout's commit, "+ changes" when the tree differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + (
        " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
