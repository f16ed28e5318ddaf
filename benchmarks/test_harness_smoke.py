"""Smoke tests of the macro-benchmark harness (``macrobench/``, ``_variant.py``, ``_harness.py``).

Fast: the pure pieces as tables, plus one tiny variant run end to end in a subprocess against
an in-process simulator, so ``python benchmarks/run.py`` cannot silently rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import _harness as h
import inprocess_overhead as overhead
import pytest
from macrobench import checks, ratelimit, report, runner, throughput
from macrobench.plan import BARE, SEED, UNLIMITED_RPM, UNLIMITED_TPM, ours

from llm_api_client.simulator import Simulator


def _response(content: str) -> Any:
    return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=content))])


@pytest.mark.parametrize(
    ("content", "index", "expected"),
    [
        ("echo: run#1# answer in one line please", 1, True),
        ("echo: run#10# answer in one line please", 1, False),  # #1# is no prefix of #10#
        ("echo: run#1# answer", 10, False),
        ("echo: warm#1# answer", 1, False),  # another run's answer
        ("run#1#", 1, False),  # no echo prefix
    ],
)
def test_echoes_matches_only_its_own_request(content: str, index: int, expected: bool) -> None:
    assert h.echoes(_response(content), "run", index) is expected


@pytest.mark.parametrize("bad", [None, object(), SimpleNamespace(choices=[])])
def test_echoes_is_false_for_malformed_responses(bad: Any) -> None:
    assert h.echoes(bad, "run", 0) is False


def test_requests_carry_the_endpoint_only_when_given() -> None:
    ours, seed = h.request("t", 3, 16, "http://127.0.0.1:1/v1"), h.request("t", 3, 16, None)
    assert ours["api_base"] == "http://127.0.0.1:1/v1" and ours["api_key"]
    assert "api_base" not in seed and "api_key" not in seed
    assert seed["messages"][-1]["content"] == h.message("t", 3)


@pytest.mark.parametrize(
    ("per_second", "expected"),
    [
        ([], None),
        ([50, 50], None),  # only partial seconds
        ([70, 50, 50, 20], 50.0),  # the burst second and the tail are left out
        ([10, 40, 60, 5], 50.0),
    ],
)
def test_steady_rate_leaves_out_first_and_last_second(
    per_second: list[int], expected: float | None
) -> None:
    assert ratelimit.steady_rate(per_second) == expected


def test_check_compares_tracker_with_simulator_and_counts_wrong_echoes() -> None:
    stats = {"answered": 3, "prompt_tokens": 30, "completion_tokens": 9}
    good = {"wrong": 0, "tracker": {"calls": 3, "prompt": 30, "completion": 9}}
    assert checks.check(good, stats, tracked=True) == {"ok": True, "problems": []}
    bad = {"wrong": 1, "tracker": {"calls": 2, "prompt": 30, "completion": 9}}
    verdict = checks.check(bad, stats, tracked=True)
    assert not verdict["ok"] and len(verdict["problems"]) == 2
    assert checks.check(bad | {"wrong": 0}, stats, tracked=False)["ok"]  # bare pool: no tracker


def test_batch_check_keeps_every_problem() -> None:
    """A wrong echo and an unanswered request in one batch: both are reported."""
    stats = {"answered": 2, "prompt_tokens": 20, "completion_tokens": 6}
    result = {"n": 3, "ok": 2, "wrong": 1, "tracker": {"calls": 2, "prompt": 20, "completion": 6}}
    result["errors"] = {"Timeout": {"count": 1, "first": "timed out"}}
    verdict = checks.batch_check(result, stats, tracked=True)
    expected = ["1 responses not echoing their request", "1 unanswered (Timeout x1)"]
    assert verdict == {"ok": False, "problems": expected}


def test_parse_result_takes_the_last_result_line() -> None:
    out = 'noise\nRESULT {"a": 1}\nmore noise\nRESULT {"a": 2}\n'
    assert runner.parse_result(out) == {"a": 2}
    assert runner.parse_result("no result here") is None


def test_table_aligns_columns() -> None:
    text = report.table(["a", "bb"], [["xxx", "y"], ["z", ""]])
    lines = text.splitlines()
    assert lines[0].startswith("a   | bb") and lines[2].startswith("xxx | y")


def test_throughput_ratios_relate_rows_of_one_latency() -> None:
    def row(latency: int, variant: str, rps: float, cpu: float) -> dict[str, Any]:
        processes = int(variant[-1]) if variant.startswith("ours") else None
        figures = {"rps": rps, "cpu_ms_per_request": cpu, "processes": processes}
        return {"latency_ms": latency, "variant": variant, **figures}

    rows = [
        row(0, SEED, 100.0, 8.0),
        row(0, BARE, 150.0, 4.0),
        row(0, ours(1), 200.0, 4.4),
        row(0, ours(2), 300.0, 5.0),
        row(50, ours(2), 9.0, 1.0),
    ]
    throughput.add_ratios(rows)
    assert rows[2]["x_seed_rps"] == 2.0 and rows[2]["x_p1_rps"] is None
    assert rows[3]["x_p1_rps"] == 1.5 and rows[3]["x_bare_cpu"] == 1.25
    assert rows[4]["x_seed_rps"] is None and rows[4]["x_p1_rps"] is None  # none at 50 ms


def test_tree_cpu_includes_children() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        cpu = h.tree_cpu()
        assert os.getpid() in cpu and child.pid in cpu
        assert all(seconds >= 0 for seconds in cpu.values())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()


def test_peak_rss_is_readable() -> None:
    assert (h.status_kb("VmHWM") or 0) >= (h.status_kb("VmRSS") or 0) > 0


@pytest.mark.parametrize(
    ("kind", "transport"), [("ours", "litellm"), ("ours", None), ("aiohttp", None)]
)
def test_one_variant_end_to_end(kind: str, transport: str | None) -> None:
    """A tiny batch of ours (threads only; on the litellm transport, or on the default one as
    the lean row runs it) or of the raw aiohttp floor through ``_variant.py``: answered,
    echoed, and ours' totals equal to the simulator's."""
    with Simulator() as sim:
        phase = {
            "sim": sim.url,
            "sim_pid": os.getpid(),
            "base_url": sim.base_url,
            "n": 5,
            "warmup": 2,
            "concurrency": 4,
            "processes": 0,
            "rpm": UNLIMITED_RPM,
            "tpm": UNLIMITED_TPM,
            "max_tokens": 8,
            "transport": transport,
        }
        env = dict(os.environ, PYTHONPATH=str(runner.ROOT), LITELLM_LOCAL_MODEL_COST_MAP="True")
        spec = {"mode": "batch", "kind": kind, "phases": [phase]}
        done = subprocess.run(
            [sys.executable, str(runner.BENCHMARKS / "_variant.py"), json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            timeout=100,
            check=False,
        )
    result = runner.parse_result(done.stdout)
    assert result is not None, done.stderr[-2000:]
    (measured,) = result["phases"]
    assert measured["ok"] == 5 and measured["wrong"] == 0 and measured["cpu"] > 0
    tracked = kind not in throughput.UNTRACKED
    verdict = checks.batch_check(measured, checks.take_stats(measured), tracked=tracked)
    assert verdict == {"ok": True, "problems": []}


def test_overhead_pairs_alternate_their_order_and_divide_ours_by_bare() -> None:
    assert [overhead.order(k) for k in range(3)] == [
        ("ours", "bare"),
        ("bare", "ours"),
        ("ours", "bare"),
    ]
    pairs = [
        {"ours": overhead.Batch(100, 5.0, ()), "bare": overhead.Batch(90, 4.0, ())},
        {"ours": overhead.Batch(100, 3.0, ()), "bare": overhead.Batch(90, 4.0, ())},
        {"ours": overhead.Batch(100, 4.0, ()), "bare": overhead.Batch(90, 4.0, ())},
    ]
    assert overhead.ratios(pairs) == [1.25, 0.75, 1.0]
    assert overhead.verdict(pairs).startswith("CPU per request, ours / bare: median 1.00x")


def test_overhead_batch_counts_lost_and_misplaced_answers() -> None:
    """A fake run answering request 0 with request 1's echo and dropping request 2."""

    def run(batch: list[dict[str, Any]]) -> list[Any]:
        echoes = [_response("echo: " + r["messages"][-1]["content"]) for r in batch]
        return [echoes[1], echoes[1], None, *echoes[3:]]

    measured = overhead.measure(run, "t", 5, "http://127.0.0.1:1/v1", settle=0.0)
    assert measured.problems == ("1 unanswered", "1 answering another request")
    assert measured.rps > 0 and measured.cpu_ms >= 0


def test_overhead_runs_end_to_end() -> None:
    """One tiny pair through ``inprocess_overhead.py``: a row per pair, a median, exit 0."""
    env = dict(os.environ, PYTHONPATH=str(runner.ROOT), LITELLM_LOCAL_MODEL_COST_MAP="True")
    argv = ["--pairs", "1", "--requests", "6", "--warmup", "2", "--threads", "3"]
    argv += ["--latency-ms", "0", "--settle", "0", "--markdown"]
    done = subprocess.run(
        [sys.executable, str(runner.BENCHMARKS / "inprocess_overhead.py"), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "| 1 | ours then bare |" in done.stdout
    assert "median" in done.stdout and "FAIL" not in done.stdout


def test_soak_markdown_puts_warm_and_end_side_by_side() -> None:
    import soak

    warm = {"rss_kib": 300_000, "threads": 2, "fds": 22, "worker_rss_kib": 440_000}
    end = warm | {"rss_kib": 301_024, "worker_rss_kib": 456_448}
    figures = {"requests": 50_000, "failed": 3, "seconds": 202.1, "requests_per_second": 247.4}
    text = soak.markdown(figures | {"warm": warm, "end": end}, 5_000)
    lines = text.splitlines()
    assert lines[0] == "| | after 5,000 | after 50,000 |"
    assert "| coordinator RSS | 300,000 KiB | 301,024 KiB |" in lines
    assert "| workers' RSS (all) | 440,000 KiB | 456,448 KiB |" in lines
    assert lines[-1] == "49,997 of 50,000 answered, 247.4 requests/s over 202.1 s."


def test_overhead_profile_charges_built_ins_to_their_callers_and_leaves_itself_out() -> None:
    import overhead_profile as profile

    execute = "/x/llm_api_client/call/execute.py:57(send)"
    limiter = "/x/llm_api_client/ratelimit/limiter.py:10(admit)"
    before = {(execute, execute): 1.0, ("~:0(isinstance)", limiter): 0.5}
    after = {
        (execute, execute): 3.0,
        ("~:0(isinstance)", limiter): 1.5,
        ("/lib/cProfile.py:55(snapshot_stats)", "/lib/cProfile.py:55(snapshot_stats)"): 9.0,
        ("/x/site-packages/somewhere.py:1(f)", "/x/site-packages/somewhere.py:1(f)"): 0.5,
    }
    stages = profile.by_stage(before, after)
    assert stages == {
        "per-request call and retry (tenacity)": 2.0,
        "rate limiter": 1.0,
        profile.OTHER: 0.5,
    }
    text = profile.table(0.001, stages, markdown=True)
    assert "| per-request call and retry (tenacity) | 57.1% | 571 |" in text
    assert text.splitlines()[-1] == "| total | 100% | 1000 |"
