"""``llm-api-client run --max-cost`` with the real client against the simulator.

The simulator answers with every token ``max_tokens`` allows, so each request costs what the cap
projects for it; a cap of 3.5 requests must let exactly three reach the provider, a rerun with the
same cap sends nothing (the cap covers the output), and one without it picks up where the cap
stopped the batch.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llm_api_client.cli import main as cli_main
from llm_api_client.simulator import Simulator
from tests.fakes import litellm

pytestmark = pytest.mark.slow

MODEL = "gpt-4o-mini"
MAX_TOKENS = 1_000
ROWS = 10


def price_cap(requests: float) -> float:
    """The cost of ``requests`` full-length requests (a prompt of at most 20 tokens each)."""
    prices = litellm.model_cost[MODEL]
    one = 20 * prices["input_cost_per_token"] + MAX_TOKENS * prices["output_cost_per_token"]
    return requests * one


def provider_cost(stats: dict[str, Any]) -> float:
    """What the simulator's counted tokens cost at litellm's prices."""
    prices = litellm.model_cost[MODEL]
    return (
        stats["prompt_tokens"] * prices["input_cost_per_token"]
        + stats["completion_tokens"] * prices["output_cost_per_token"]
    )


def write_rows(path: Path) -> Path:
    lines = []
    for i in range(ROWS):
        body = {
            "model": f"openai/{MODEL}",
            "messages": [{"role": "user", "content": f"q{i}"}],
            "max_tokens": MAX_TOKENS,
        }
        row = {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines))
    return path


def run(sim: Simulator, data: Path, out: Path, *options: str) -> int:
    argv = ["run", str(data), "-o", str(out), "--api-base", sim.base_url]
    argv += ["--api-key", "sk-test", "--processes", "0", "--max-retries", "0", "--quiet"]
    return cli_main.main([*argv, *options])


def outcomes(out: Path) -> dict[str, str | None]:
    """custom_id -> the error code of its last row (None: answered)."""
    found: dict[str, str | None] = {}
    for line in out.read_text().splitlines():
        row = json.loads(line)
        found[row["custom_id"]] = row["error"]["code"] if row["error"] else None
    return found


def test_the_cap_lets_three_requests_through_and_a_rerun_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = write_rows(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    cap = f"{price_cap(3.5):.8f}"
    with Simulator(completion_tokens=MAX_TOKENS) as sim:
        assert run(sim, data, out, "--max-cost", cap) == 1
        first = sim.stats()
        summary = capsys.readouterr().out

        assert first["received"] == first["answered"] == 3
        assert first["completion_tokens"] == 3 * MAX_TOKENS  # full length: cost = projection
        assert provider_cost(first) <= float(cap)
        assert Counter(outcomes(out).values()) == {None: 3, "BudgetExceededError": 1}
        assert f"{ROWS - 4} not started" in summary
        assert "spend cap of $" in summary

        sim.reset()
        assert run(sim, data, out, "--max-cost", cap) == 1
        assert sim.stats()["received"] == 0  # the cap covers the output: nothing more

        sim.reset()
        assert run(sim, data, out) == 0
        assert sim.stats()["answered"] == ROWS - 3
    assert set(outcomes(out).values()) == {None}
