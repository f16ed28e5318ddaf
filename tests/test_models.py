"""What we know about providers and models: routing, windows, parameters, maximum output."""

from __future__ import annotations

from typing import Any

import pytest

from llm_api_client import APIClient
from llm_api_client._constants import DEFAULT_MAX_OUTPUT_TOKENS
from llm_api_client.providers.models import (
    ContextLimits,
    context_limits,
    known_without_reasoning,
    max_output_tokens,
    output_tokens_per_choice,
    provider_of,
    resolve,
    supported_openai_params,
)
from tests.fakes import FakeCompletion, chat


@pytest.mark.parametrize(
    ("model", "request_params", "provider"),
    [
        ("gpt-4o-mini", {}, "openai"),
        ("openai/gpt-4o-mini", {}, "openai"),
        ("claude-sonnet-4-20250514", {}, "anthropic"),
        ("anthropic/claude-3-haiku-20240307", {}, "anthropic"),
        ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", {}, "bedrock"),
        ("gpt-4o-mini", {"custom_llm_provider": "azure"}, "azure"),
        ("my-local-model", {"custom_llm_provider": "openai"}, "openai"),
        # litellm cannot route these: the prefix, else nothing
        ("sim/model", {}, "sim"),
        ("sim-model-nobody-knows", {}, None),
    ],
)
def test_provider_of(model: str, request_params: dict[str, Any], provider: str | None) -> None:
    assert provider_of(model, {"model": model, **request_params}) == provider


def test_resolve_splits_the_prefix() -> None:
    assert resolve("openai/gpt-4o-mini") == ("gpt-4o-mini", "openai")
    assert resolve("sim-model-nobody-knows") is None


@pytest.mark.parametrize("backend", [0, 2], ids=["threads", "processes"])
def test_the_coordinator_resolves_each_requests_provider_for_its_record(backend: int) -> None:
    requests = [chat("a", model="gpt-4o-mini"), chat("b", model="claude-sonnet-4-20250514")]
    with APIClient(None, None, processes=backend, completion=FakeCompletion()) as client:
        results = sorted(client.stream(requests), key=lambda result: result.index)

    assert [r.usage.provider for r in results if r.usage] == ["openai", "anthropic"]


def test_context_limits() -> None:
    assert context_limits("gpt-4o-mini") == ContextLimits(128_000, 16_384, shared=True)
    assert context_limits("openai/gpt-4o-mini") == context_limits("gpt-4o-mini")
    gemini = context_limits("gemini/gemini-3.1-flash-lite-preview")
    assert gemini is not None and gemini.shared is False  # separate input and output limits
    assert context_limits("sim-model-nobody-knows") is None


def test_supported_params_and_reasoning() -> None:
    supported = supported_openai_params("openai/gpt-4o-mini")
    assert supported is not None and "user" in supported and "temperature" in supported
    assert supported_openai_params("sim-model-nobody-knows") is None
    assert known_without_reasoning("gpt-4o-mini") is True
    assert known_without_reasoning("o3-mini") is False
    assert known_without_reasoning("sim-model-nobody-knows") is False  # unknown: keep it


@pytest.mark.parametrize(
    ("request_params", "per_choice", "total"),
    [
        ({}, DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_OUTPUT_TOKENS),
        ({"max_tokens": 100}, 100, 100),
        ({"max_completion_tokens": 50, "max_tokens": 100}, 50, 50),
        ({"max_completion_tokens": None, "max_tokens": 100}, 100, 100),
        ({"max_tokens": 100, "n": 3}, 100, 300),
        ({"n": 2}, DEFAULT_MAX_OUTPUT_TOKENS, 2 * DEFAULT_MAX_OUTPUT_TOKENS),
        ({"max_tokens": 10, "n": None}, 10, 10),
    ],
)
def test_max_output_tokens(request_params: dict[str, Any], per_choice: int, total: int) -> None:
    """The rate limit is charged for every choice; a context window holds one choice at a time."""
    request = {"model": "gpt-4o", "messages": [], **request_params}
    assert output_tokens_per_choice(request) == per_choice
    assert max_output_tokens(request) == total
