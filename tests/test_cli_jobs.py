"""``llm-api-client run`` as users run it, against the simulator: a dry run, one writer per
output, standard input, and the spend cap across resumes."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llm_api_client.cli import main as cli_main
from llm_api_client.jobs.batchfile import InputReader
from llm_api_client.jobs.projection import Limits, project
from llm_api_client.jobs.spend import Answered
from llm_api_client.prepare.request import prepare_request
from llm_api_client.providers import pricing
from llm_api_client.simulator import Simulator
from tests.fakes import no_given_prices  # noqa: F401 - the fixture
from tests.test_cli_run import answers, batch_line, start_cli, write_input

MODEL = "openai/gpt-4o-mini"
KEY = "sk-jobs-test-0123456789"


def lines(n: int, max_tokens: int = 8, model: str = MODEL) -> list[str]:
    return [
        batch_line(f"r{i}", f"question {i}", max_tokens=max_tokens, model=model) for i in range(n)
    ]


def run(*argv: str | Path) -> int:
    return cli_main.main(["run", *map(str, argv)])


pytestmark = pytest.mark.usefixtures("no_given_prices")


# ---------------------------------------------------------------------------------- dry run


@pytest.mark.slow
def test_a_dry_run_of_500_lines_sends_nothing_and_prints_the_projection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = write_input(tmp_path / "in.jsonl", lines(500, max_tokens=20)), tmp_path / "o.jsonl"
    with Simulator() as sim:
        common = ["-o", out, "--api-base", sim.base_url, "--api-key", KEY, "--rpm", "600"]
        assert run(data, *common, "--dry-run") == 0
        assert sim.stats()["received"] == 0
    assert not out.exists()
    printed = capsys.readouterr().out
    bodies = [json.loads(line)["body"] for line in data.read_text().splitlines()]
    prompt = sum(prepare_request(b, index=0).cost.input_tokens for b in bodies)
    at_most = sum(
        pricing.cost_of(MODEL, prepare_request(b, index=0).cost.input_tokens, 20) for b in bodies
    )
    assert re.search(r"requests: +500\n", printed)
    assert re.search(rf"prompt tokens: +{prompt:,}\n", printed)
    assert re.search(r"max output tokens: +10,000\n", printed)
    assert f"cost, at most:      ${at_most:,.6f}".rstrip("0") in printed
    assert "time, at least:     50.0s (set by the requests per minute limit)" in printed


def test_the_expected_cost_learns_from_the_answers_the_output_holds(tmp_path: Path) -> None:
    data = write_input(tmp_path / "in.jsonl", lines(4, max_tokens=100))
    fresh = project(InputReader(data), {}, expected_completion=None)
    learned = project(InputReader(data, done={"r0"}), {}, expected_completion=10)
    prompt = fresh.prompt_tokens // 4
    assert (fresh.requests, learned.requests, learned.already_done) == (4, 3, 1)
    assert fresh.cost_expected == pytest.approx(4 * pricing.cost_of(MODEL, prompt, 50))
    assert learned.cost_expected == pytest.approx(3 * pricing.cost_of(MODEL, prompt, 10))
    assert fresh.cost_at_most == pytest.approx(4 * pricing.cost_of(MODEL, prompt, 100))
    assert Answered({"a", "b"}, completion_tokens=30).mean_completion == 15


def test_the_time_is_set_by_the_tightest_limit(tmp_path: Path) -> None:
    p = project(InputReader(write_input(tmp_path / "in.jsonl", lines(4, 100))), {}, None)
    tokens = p.prompt_tokens + p.max_output_tokens
    assert p.max_output_tokens == 400
    assert p.minutes(Limits(requests=2, tokens=tokens)) == (2.0, "requests per minute")
    assert p.minutes(Limits(requests=4, tokens=tokens / 3)) == (3.0, "tokens per minute")
    output = Limits(input_tokens=p.prompt_tokens, output_tokens=100)
    assert p.minutes(output) == (4.0, "output tokens per minute")
    assert p.minutes(Limits(input_tokens=p.prompt_tokens / 5)) == (5.0, "input tokens per minute")
    assert p.minutes(Limits()) == (0.0, "no limit")


def test_a_dry_run_reports_lines_that_would_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = json.dumps({"model": MODEL, "messages": "not a list"})
    data = write_input(tmp_path / "in.jsonl", [*lines(2), "{oops", bad])
    assert run(data, "-o", tmp_path / "out.jsonl", "--dry-run") == 1
    printed = capsys.readouterr().out
    assert "requests:           2\n" in printed
    assert "line 3: invalid JSON" in printed and "line 4:" in printed
    assert "2 would fail" in printed


def test_a_capped_dry_run_refuses_an_unpriced_model_like_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_input(tmp_path / "in.jsonl", lines(2, model="openai/sim-unpriced"))
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out, "--dry-run", "--max-cost", "1") == 2
    assert "--price MODEL=IN:OUT" in capsys.readouterr().err
    assert (
        run(data, "-o", out, "--dry-run", "--max-cost", "1", "--price", "openai/sim-unpriced=1:2")
        == 0
    )
    printed = capsys.readouterr().out
    expected = 2 * pricing.cost_of("openai/sim-unpriced", 0, 8)
    assert expected > 0 and "no known price" not in printed


# ------------------------------------------------------------------- one writer, stdin


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_second_run_on_a_held_output_exits_at_once_and_the_first_finishes(
    tmp_path: Path,
) -> None:
    n = 150
    data, out = write_input(tmp_path / "in.jsonl", lines(n)), tmp_path / "out.jsonl"
    with Simulator(latency_ms=20) as sim:
        common: list[str | Path] = ["-o", out, "--api-base", sim.base_url, "--api-key", KEY]
        first = start_cli(data, *common, "--rpm", "900", "--quiet")
        with killed_at_exit(first):
            wait_until(lambda: out.exists() and out.read_bytes().count(b"\n") >= 5, first)
            started = time.monotonic()
            second = start_cli(data, *common, "--rpm", "60000", "--quiet")
            with killed_at_exit(second):
                _, err = second.communicate(timeout=120)
            took = time.monotonic() - started
            still_running = first.poll() is None
            assert second.returncode == 3, err
            assert "another llm-api-client run is writing" in err
            assert took < 5 or still_running  # at once: not after waiting for the first
            _, first_err = first.communicate(timeout=240)
        assert first.returncode == 0, first_err
        received = sim.stats()["received_by_key"]
    assert answers(out) == {f"r{i}": f"echo: question {i}" for i in range(n)}
    assert set(received.values()) == {1} and len(received) == n


@contextlib.contextmanager
def killed_at_exit(process: subprocess.Popen[str]) -> Iterator[None]:
    """A failed assertion must not leave the CLI running (nor its Popen warning)."""
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    # Generous: a loaded machine takes tens of seconds to import litellm in a new process.
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("the first run wrote too few rows before it ended or the deadline")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stdin_input_answers_every_row(tmp_path: Path) -> None:
    n = 60
    data, out = write_input(tmp_path / "in.jsonl", lines(n)), tmp_path / "out.jsonl"
    with Simulator() as sim, data.open("rb") as stdin:
        argv = ["-", "-o", out, "--api-base", sim.base_url, "--api-key", KEY, "--quiet"]
        process = start_cli(*argv, stdin=stdin)
        with killed_at_exit(process):
            _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    assert answers(out) == {f"r{i}": f"echo: question {i}" for i in range(n)}
    assert not list(tmp_path.glob(".llm-api-client-stdin-*"))  # the copy is removed


# --------------------------------------------------------------------- the cap across resumes


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_cap_covers_the_output_across_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, max_tokens = "openai/sim-priced-by-user", 100
    data = write_input(tmp_path / "in.jsonl", lines(1_000, max_tokens, model))
    out = tmp_path / "out.jsonl"
    price = f"{model}=1000:1000"  # USD per million tokens: about $0.11 a request
    with Simulator(completion_tokens=max_tokens) as sim:
        common = ["-o", out, "--api-base", sim.base_url, "--api-key", KEY, "--quiet"]
        common += ["--processes", "0", "--max-retries", "0", "--rpm", "60000"]
        assert run(data, *common, "--max-cost", "5") == 2  # no price: refused, nothing sent
        assert sim.stats()["received"] == 0
        assert run(data, *common, "--max-cost", "5", "--price", price) == 1
        first = sim.stats()["received"]
        summary = capsys.readouterr().out
        assert 0 < first < 1_000
        spent = float(re.search(r"\$([0-9.]+) spent on", summary).group(1))  # type: ignore[union-attr]
        assert 4 < spent <= 5

        sim.reset()
        assert run(data, *common, "--max-cost", "5", "--price", price) == 1
        assert sim.stats()["received"] <= 5
        assert "spend cap of $5 reached" in capsys.readouterr().out
    answered = [cid for cid, content in answers(out).items() if content is not None]
    assert first <= len(answered) <= first + 5
