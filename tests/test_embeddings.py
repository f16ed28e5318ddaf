"""Embedding requests (``input`` instead of ``messages``) end to end against the simulator.

Through ``make_requests`` on both transports and both backends, ``APIClient.embed`` and
``llm-api-client run``: every vector is the simulator's (``embedding_for``) for its input, in
order, and the tracker counts the tokens the simulator billed, at the price map's price.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llm_api_client import APIClient, errors
from llm_api_client.cli import main as cli_main
from llm_api_client.embed import embedding_requests, vectors_of
from llm_api_client.providers.pricing import cost_of
from llm_api_client.simulator import Simulator
from llm_api_client.simulator.embeddings import embedding_for

MODEL = "openai/text-embedding-3-small"
DIMENSIONS = 32


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(embedding_dimensions=DIMENSIONS) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_stats(sim: Simulator) -> None:
    sim.reset()


def embedding(sim: Simulator, texts: list[str], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": texts, "api_base": sim.base_url, "api_key": "sk-x", **extra}


def billed(sim: Simulator) -> dict[str, Any]:
    counts: dict[str, Any] = sim.stats()["endpoints"]["embeddings"]
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_200_requests_of_4_inputs_get_the_simulator_vectors_in_order(
    sim: Simulator, transport: str
) -> None:
    texts = [[f"row {i} text {j} {'word ' * (i % 7)}" for j in range(4)] for i in range(200)]
    requests = [embedding(sim, four) for four in texts]

    with APIClient(processes=0, transport=transport) as client:
        responses = client.make_requests(requests)

    assert client.last_errors == {}
    for four, response in zip(texts, responses, strict=True):
        assert vectors_of(response, 4) == [embedding_for(text, DIMENSIONS) for text in four]
    assert client.tracker.total_prompt_tokens == billed(sim)["prompt_tokens"] > 200 * 4
    assert client.tracker.total_completion_tokens == 0
    usage = client.tracker.by_model[MODEL]
    assert (usage.requests, usage.responses) == (200, 200)
    expected_cost = cost_of("text-embedding-3-small", usage.prompt_tokens, 0)
    assert usage.cost == pytest.approx(expected_cost) and usage.cost > 0


def test_worker_processes_return_embeddings_too(sim: Simulator) -> None:
    texts = [f"text {i}" for i in range(6)]
    requests = [embedding(sim, [text]) for text in texts]

    with APIClient(processes=2, max_workers=4) as client:
        responses = client.make_requests(requests)

    assert [vectors_of(r, 1)[0] for r in responses] == [embedding_for(t, DIMENSIONS) for t in texts]
    assert client.tracker.total_prompt_tokens == billed(sim)["prompt_tokens"]


def test_embed_cuts_the_texts_into_requests_and_returns_the_vectors_in_order(
    sim: Simulator,
) -> None:
    texts = [f"sentence number {i}" for i in range(10)]

    with APIClient(processes=0) as client:
        vectors = client.embed(
            texts, model=MODEL, batch_size=3, api_base=sim.base_url, api_key="sk-x"
        )

    assert vectors == [embedding_for(text, DIMENSIONS) for text in texts]
    assert billed(sim)["answered"] == 4  # 3 + 3 + 3 + 1
    assert client.tracker.by_model[MODEL].requests == 4


def test_embed_gives_none_for_the_texts_of_a_failed_request(sim: Simulator) -> None:
    texts = ["a", "b", "#fail=400 c", "d", "e"]

    with APIClient(processes=0) as client:
        vectors = client.embed(
            texts, model=MODEL, batch_size=2, api_base=sim.base_url, api_key="sk-x"
        )

    assert vectors[:2] == [embedding_for("a", DIMENSIONS), embedding_for("b", DIMENSIONS)]
    assert vectors[2:4] == [None, None]
    assert vectors[4] == embedding_for("e", DIMENSIONS)
    assert isinstance(client.last_errors[1], errors.BadRequestError)


def test_embed_decodes_base64_vectors(sim: Simulator) -> None:
    with APIClient(processes=0) as client:
        [vector] = client.embed(
            ["x"], model=MODEL, encoding_format="base64", api_base=sim.base_url, api_key="k"
        )
    assert vector == embedding_for("x", DIMENSIONS)


def test_embedding_requests_keep_the_options_and_refuse_a_bad_batch_size() -> None:
    made = embedding_requests(["a", "b", "c"], model="m", batch_size=2, dimensions=8)
    assert made == [
        {"dimensions": 8, "model": "m", "input": ["a", "b"]},
        {"dimensions": 8, "model": "m", "input": ["c"]},
    ]
    for bad in (0, 2049, 1.5):
        with pytest.raises(errors.ConfigurationError, match="batch_size"):
            embedding_requests(["a"], model="m", batch_size=bad)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="not one string"):
        embedding_requests("abc", model="m", batch_size=2)


def test_a_malformed_embedding_request_fails_unsent_and_the_batch_goes_on(sim: Simulator) -> None:
    requests = [embedding(sim, ["ok"]), embedding(sim, []), embedding(sim, ["fine"])]

    with APIClient(processes=0) as client:
        responses = client.make_requests(requests)

    assert responses[1] is None and isinstance(client.last_errors[1], errors.InvalidRequestError)
    assert vectors_of(responses[2], 1) == [embedding_for("fine", DIMENSIONS)]
    assert billed(sim)["received"] == 2


def test_run_answers_embedding_lines_in_the_batch_output_format(
    sim: Simulator, tmp_path: Path
) -> None:
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings"}
        | {"body": {"model": MODEL, "input": [f"t{i}", f"u{i}"]}}
        for i in range(5)
    ]
    lines.append(
        {"custom_id": "wrong", "method": "POST", "url": "/v1/chat/completions"}
        | {"body": {"model": MODEL, "input": "x"}}
    )
    lines.append(
        {"custom_id": "refused", "method": "POST", "url": "/v1/embeddings"}
        | {"body": {"model": MODEL, "input": "#fail=400 x"}}
    )
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))

    argv = ["run", str(source), "--output", str(out), "--quiet", "--processes", "0"]
    code = cli_main.main([*argv, "--api-base", sim.base_url, "--api-key", "sk-x"])

    rows = {row["custom_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert code != 0 and set(rows) == {*(f"e{i}" for i in range(5)), "wrong", "refused"}
    for i in range(5):
        body = rows[f"e{i}"]["response"]["body"]
        assert rows[f"e{i}"]["response"]["status_code"] == 200
        assert body["object"] == "list" and body["usage"]["prompt_tokens"] > 0
        vectors = [item["embedding"] for item in sorted(body["data"], key=lambda d: d["index"])]
        assert vectors == [embedding_for(f"t{i}", DIMENSIONS), embedding_for(f"u{i}", DIMENSIONS)]
    assert "url must be '/v1/embeddings'" in rows["wrong"]["error"]["message"]
    assert rows["refused"]["error"]["code"] == "BadRequestError"
    [failure] = map(json.loads, (tmp_path / "out.jsonl.failures.jsonl").read_text().splitlines())
    assert failure["custom_id"] == "refused" and failure["url"] == "/v1/embeddings"


def test_vectors_of_puts_the_items_in_input_order_and_checks_their_number() -> None:
    class Item:
        def __init__(self, index: int, embedding: list[float]) -> None:
            self.index, self.embedding = index, embedding

    answer = SimpleNamespace(data=[{"index": 1, "embedding": [1.0]}, Item(0, [0.5])])
    assert vectors_of(answer, 2) == [[0.5], [1.0]]
    with pytest.raises(ValueError, match="expected 3 vectors"):
        vectors_of(answer, 3)
