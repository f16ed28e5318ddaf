"""The macro benchmarks: this library against a bare thread pool and the published 0.1.8.

    python benchmarks/run.py [--quick] [--markdown] [--json] [--only throughput|ratelimit|stream]

Everything runs side by side in one invocation against the project's simulator on loopback (in
its own process, so it never shares a GIL with a client). Each variant runs alone in a fresh
subprocess (``_variant.py``): a warm-up batch, then the measured batch, whose wall time and CPU
(the variant's process and all its children, from ``/proc``) are reported. The seed runs from
its own venv (``seed_env.py``, created on first use).

Sections:
  throughput  requests/s and CPU ms per request at 0, 50 and 500 ms of simulated latency, no
              limits: ours at processes=0 (threads only) and 1..cpu_count, a bare
              ThreadPoolExecutor calling litellm.completion, and the seed, at one concurrency;
              the median of 3 rounds (1 with --quick).
  ratelimit   share of the limit achieved and 429s against per-second enforcement: RPM-bound
              (3,000 RPM) and TPM-bound (max_tokens=400 at 600k TPM), ours with 2 processes
              and the seed, each configured at the simulator's limits.
  stream      time to first result and the coordinator's peak RSS for 5k/25k/100k-request
              streamed batches (a generator in, results dropped), zero latency, no limits.
Every batch is also checked: each response echoes its own request, every request is answered,
and the tracker's calls, prompt and completion tokens equal what the simulator counted.

Then every target of the sections run is judged: met, NOT met, or NOT met (no measurement)
when its row is missing or errored. The exit status is 1 when any target is not met, except
with --quick, which reports only (exit status 0). The pieces live in ``macrobench/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run from a clean clone without installing: this repository's package first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from macrobench import ratelimit, report, stream, throughput, verdicts
from macrobench.plan import FULL, QUICK, SECTIONS, Plan
from macrobench.runner import Runner, make_runner

Row = dict[str, Any]
STEPS: dict[str, Callable[[Plan, Runner], list[Row]]] = {
    "throughput": throughput.run,
    "ratelimit": ratelimit.run,
    "stream": stream.run,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and variants (<3 min)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    chosen = [s for s in SECTIONS if s in (args.only or SECTIONS)]
    command = shlex.join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    clock = report.RunClock()
    runner = make_runner(any(s in chosen for s in ("throughput", "ratelimit")), log)
    plan = QUICK if args.quick else FULL
    rows = [row for section in chosen for row in STEPS[section](plan, runner)]
    head = clock.header(command)
    for label, tail in runner.tails.items():
        log(f"--- stderr of {label} ---\n{tail}")
    return conclude(rows, chosen, command, head, args)


def conclude(
    rows: list[Row], chosen: list[str], command: str, head: str, args: argparse.Namespace
) -> int:
    """Judge the rows, print the report (and the JSON), return the exit status."""
    judged = verdicts.judge(rows, chosen)
    outcome = report.Outcome(command, head, rows, judged, verdicts.notes(rows), args.quick)
    print(report.render(outcome, markdown=args.markdown))
    if args.json:
        print(json.dumps(as_json(outcome), indent=1, default=str))
    return verdicts.exit_status(judged, quick=args.quick)


def as_json(outcome: report.Outcome) -> dict[str, Any]:
    return {
        "command": outcome.command,
        "header": outcome.header,
        "quick": outcome.quick,
        "rows": outcome.rows,
        "targets": [v.__dict__ | {"status": v.status} for v in outcome.verdicts],
    }


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
