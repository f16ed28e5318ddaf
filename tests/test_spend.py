"""The spend cap's pieces: ``--price`` parsing, prices the user gives, what an output cost."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from llm_api_client.jobs import spend
from llm_api_client.jobs.stdin import input_file
from llm_api_client.providers import pricing
from tests.fakes import no_given_prices  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("no_given_prices")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my-model=0.5:1.5", ("my-model", 0.5e-6, 1.5e-6)),
        ("openai/x=0:0", ("openai/x", 0.0, 0.0)),
        ("org/m=v1=2:4", ("org/m=v1", 2e-6, 4e-6)),  # the last "=" splits
    ],
)
def test_parse_price(text: str, expected: tuple[str, float, float]) -> None:
    model, input_price, output_price = spend.parse_price(text)
    assert (model, input_price, output_price) == (expected[0], *map(pytest.approx, expected[1:]))


@pytest.mark.parametrize("text", ["m=1", "m=a:b", "=1:2", "m=-1:2", "m=inf:1", "m=1:nan", "m"])
def test_parse_price_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="MODEL=IN:OUT"):
        spend.parse_price(text)


def test_a_given_price_prices_an_unknown_model_everywhere() -> None:
    assert spend.unpriced_models(["openai/gpt-4o-mini", "sim-new", "sim-new"]) == ["sim-new"]
    spend.set_prices([spend.parse_price("sim-new=2:4")])
    assert spend.unpriced_models(["sim-new", "openai/sim-new"]) == []
    assert pricing.cost_of("openai/sim-new", 1_000_000, 500_000) == pytest.approx(4.0)


def row(custom_id: str, cost: float | None = None, error: bool = False) -> dict[str, object]:
    body = {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}
    found: dict[str, object] = {
        "custom_id": custom_id,
        "response": None if error else {"status_code": 200, "body": body},
        "error": {"code": "X", "message": "m"} if error else None,
    }
    return found if cost is None else {**found, "cost": cost}


def test_answered_counts_the_first_answer_per_id_and_prices_rows_without_a_cost(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.jsonl"
    rows = [row("a", 0.5), row("a", 9.0), row("b", error=True), row("c"), "{torn"]
    out.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    found = spend.answered(out)
    assert found.ids == {"a", "c"}
    assert found.cost == pytest.approx(0.5 + pricing.cost_of("gpt-4o-mini", 1000, 100))
    assert found.completion_tokens == 200
    assert spend.answered(tmp_path / "missing.jsonl") == spend.Answered()


def test_stdin_is_copied_beside_the_output_and_removed(tmp_path: Path) -> None:
    with input_file("-", str(tmp_path), stdin=io.BytesIO(b'{"a": 1}\n')) as path:
        assert Path(path).parent == tmp_path
        assert Path(path).read_bytes() == b'{"a": 1}\n'
    assert not Path(path).exists()
    with input_file("in.jsonl", str(tmp_path)) as same:
        assert same == "in.jsonl"
