"""Flat memory of ``llm-api-client run``: the coordinator's peak RSS for 5,000 vs 25,000 rows.

    python benchmarks/bench_run_memory.py                     # 5,000 and 25,000 rows
    python benchmarks/bench_run_memory.py --rows 2000 10000   # quicker

A fast simulator serves from its own process. Each size runs the CLI in a fresh subprocess
through a small wrapper that, after ``main()`` returns, records ``ru_maxrss`` of
``RUSAGE_SELF``: the peak resident memory of the coordinator process alone (worker processes are
its children and are not counted). The target: the larger run peaks at most 1.15 times the
smaller one, i.e. memory does not grow with the file (streamed input, results written as they
arrive, only the ``custom_id`` set grows: about 60-100 bytes per row).

Prints one line per size and the ratio; exits 1 when the ratio is above the target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.15

# The coordinator under test: the CLI's main(), then its own peak RSS (KiB on Linux) to a file.
WRAPPER = """
import resource, sys
from llm_api_client.cli.main import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as handle:
    handle.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code)
"""


def write_input(path: Path, rows: int) -> None:
    """OpenAI Batch format rows, each a distinct short question, written as a stream."""
    with open(path, "w") as handle:
        for i in range(rows):
            body = {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": f"question #{i}# in one line please"}],
                "max_tokens": 16,
            }
            line = {"custom_id": f"row-{i}", "method": "POST", "url": "/v1/chat/completions"}
            handle.write(json.dumps({**line, "body": body}) + "\n")


def run_cli(folder: Path, rows: int, base_url: str, extra: list[str]) -> dict[str, float]:
    """One CLI run over ``rows`` rows; its peak RSS (MiB), wall time and row count."""
    source, output, peak = folder / f"in-{rows}.jsonl", folder / f"out-{rows}.jsonl", folder / "rss"
    write_input(source, rows)
    command = [sys.executable, "-c", WRAPPER, str(peak), "run", str(source), "-o", str(output)]
    command += ["--api-base", base_url, "--api-key", "sk-benchmark-key", "--quiet", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):  # 1: some rows failed; their count is reported below
        raise SystemExit(f"run failed ({done.returncode}): {done.stdout}\n{done.stderr[-2000:]}")
    with open(output, "rb") as handle:
        ok = sum(b'"error": null' in line for line in handle)
    print(done.stdout.strip(), file=sys.stderr)
    return {"rows": rows, "ok": ok, "rss_mib": int(peak.read_text()) / 1024, "s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[5_000, 25_000])
    parser.add_argument("--rpm", type=int, default=120_000, help="--max-requests-per-minute")
    parser.add_argument("--processes", type=int, default=None, help="worker processes")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    from llm_api_client.simulator import Simulator

    extra = ["--max-requests-per-minute", str(args.rpm), "--max-tokens-per-minute", "100000000"]
    if args.processes is not None:
        extra += ["--processes", str(args.processes)]
    with tempfile.TemporaryDirectory() as tmp, Simulator(process=True) as sim:
        measured = [run_cli(Path(tmp), rows, sim.base_url, extra) for rows in args.rows]
    for m in measured:
        print(
            f"rows={m['rows']:>7,}  answered={m['ok']:>7,}  coordinator peak RSS="
            f"{m['rss_mib']:7.1f} MiB  wall={m['s']:6.1f} s  ({m['rows'] / m['s']:,.0f} rows/s)"
        )
    ratio = measured[1]["rss_mib"] / measured[0]["rss_mib"]
    verdict = "OK" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"ratio {measured[1]['rows']:,}/{measured[0]['rows']:,} rows: {ratio:.3f} "
          f"(target <= {TARGET_RATIO}) {verdict}")  # fmt: skip
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
