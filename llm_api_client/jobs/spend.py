"""The spend cap of a job across its resumes, and the prices it is measured with.

``--max-cost`` covers the whole output file, not one invocation: what the output's answered rows
already cost counts against it, so a rerun with the same cap sends nothing more. Each answered
row records its cost (``"cost"``, USD, as the tracker priced it); a row written without one is
priced from its ``usage`` and ``model``. ``answered`` reads an output once, unchanged, for the
ids it answered, their completion tokens and their cost.

A model litellm's price map does not know would count as free and the cap would never stop
it, so a capped job refuses such a model up front unless the user prices it::

    llm-api-client run in.jsonl -o out.jsonl --max-cost 5 --price my-model=0.5:1.5

(USD per million input and output tokens; ``providers.pricing.set_price`` holds it for the
client, the tracker and the cap.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from llm_api_client.jobs.batchfile import BatchRequest, InputReader, is_success_row
from llm_api_client.providers import pricing

__all__ = [
    "Answered",
    "answered",
    "models_of",
    "parse_price",
    "row_cost",
    "set_prices",
    "unpriced_models",
]

_PER_MILLION = 1_000_000


def parse_price(text: str) -> tuple[str, float, float]:
    """``"MODEL=IN:OUT"``, USD per million tokens -> ``(model, USD per input token, USD per
    output token)``. Raises ``ValueError`` with what is wrong.
    """
    model, _, prices = text.rpartition("=")
    input_text, _, output_text = prices.partition(":")
    try:
        per_million = float(input_text), float(output_text)
    except ValueError:
        per_million = (-1.0, -1.0)
    if not model or not all(0 <= price < float("inf") for price in per_million):
        raise ValueError(f"expected MODEL=IN:OUT, USD per million tokens, got {text!r}")
    return model, per_million[0] / _PER_MILLION, per_million[1] / _PER_MILLION


def set_prices(prices: Iterable[tuple[str, float, float]]) -> None:
    """Price each model for this process (and the worker processes it starts afterwards)."""
    for model, input_price, output_price in prices:
        pricing.set_price(model, input_price, output_price)


def models_of(path: str | os.PathLike[str], defaults: Mapping[str, Any]) -> Iterator[str]:
    """The model of each request line of ``path``: its own, else ``defaults["model"]``."""
    for entry in InputReader(path):
        if isinstance(entry, BatchRequest):
            model = entry.body.get("model", defaults.get("model"))
            if isinstance(model, str):
                yield model


def unpriced_models(models: Iterable[str]) -> list[str]:
    """The models, in the order given, that have no price (neither litellm's nor ``--price``)."""
    return [model for model in dict.fromkeys(models) if not pricing.is_priced(model)]


def row_cost(row: Any) -> float:
    """What one output row cost: its recorded ``cost``, else priced from its usage; 0 if failed."""
    if not is_success_row(row):
        return 0.0
    cost = row.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return float(cost)
    body = row["response"].get("body")
    return _priced_from_usage(body) if isinstance(body, Mapping) else 0.0


def _priced_from_usage(body: Mapping[str, Any]) -> float:
    usage, model = body.get("usage"), body.get("model")
    if not isinstance(usage, Mapping) or not isinstance(model, str):
        return 0.0
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return 0.0
    return pricing.cost_of(model, prompt, completion)


@dataclass(frozen=True)
class Answered:
    """What an existing output already holds: answered ids, their completions and cost."""

    ids: set[str] = field(default_factory=set)
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def mean_completion(self) -> float | None:
        return self.completion_tokens / len(self.ids) if self.ids else None


def answered(output: str | os.PathLike[str] | None) -> Answered:
    """Read an output without changing it; its first answer per ``custom_id`` counts, as in
    ``compact_output``. A missing file (or ``None``) holds nothing."""
    ids: set[str] = set()
    tokens, cost = 0, 0.0
    if output is None or not os.path.exists(output):
        return Answered()
    with open(output, "rb") as rows:
        for row in map(_json_or_none, rows):
            if is_success_row(row) and row.get("custom_id") not in ids:
                ids.add(row["custom_id"])
                tokens += _completion_tokens(row)
                cost += row_cost(row)
    return Answered(ids, tokens, cost)


def _completion_tokens(row: Mapping[str, Any]) -> int:
    usage = row["response"].get("body", {}).get("usage") or {}
    tokens = usage.get("completion_tokens") if isinstance(usage, Mapping) else None
    return tokens if isinstance(tokens, int) else 0


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
