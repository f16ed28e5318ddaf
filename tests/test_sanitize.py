"""Sanitization: which parameters are dropped, which are kept, logging, no mutation."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from llm_api_client import _offline
from llm_api_client.prepare import sanitize
from llm_api_client.prepare.sanitize import ROUTING_PARAMS, sanitize_request, unsupported_params

litellm = _offline.litellm()

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def fresh_log_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sanitize, "_logged", set())


@pytest.mark.parametrize(
    ("model", "param", "value", "kept"),
    [
        # The seed's failure: litellm rejects reasoning_effort on gpt-4o-mini before sending.
        ("gpt-4o-mini", "reasoning_effort", "low", False),
        ("openai/gpt-4o-mini", "reasoning_effort", "low", False),
        ("gpt-4o", "reasoning_effort", "high", False),
        ("o3-mini", "reasoning_effort", "low", True),
        ("gpt-5", "reasoning_effort", "minimal", True),
        ("openai/gpt-4o-mini", "thinking", {"type": "enabled", "budget_tokens": 64}, False),
        # OpenAI answers 400 for sampling parameters on o-series models (litellm keeps some).
        ("o3-mini", "temperature", 1.0, False),
        ("openai/o3-mini", "temperature", 0.7, False),
        ("o4-mini", "logit_bias", {"1": 1}, False),
        ("openai/o1", "presence_penalty", 0.5, False),
        ("o3-mini", "max_completion_tokens", 50, True),
        ("openai/sim-o3", "temperature", 0.7, True),
        ("o3-mini", "top_p", 0.5, False),
        ("gpt-5", "logit_bias", {"50256": -100}, False),
        ("gpt-4o-mini", "temperature", 0.3, True),
        ("gpt-4o-mini", "user", "u-1", True),
        ("gpt-4o-mini", "logprobs", True, True),
        ("mistral/mistral-large-latest", "logit_bias", {"1": 1}, False),
        ("mistral/mistral-large-latest", "n", 2, False),
        ("mistral/mistral-large-latest", "temperature", 0.3, True),
        # Not an OpenAI chat parameter: provider-specific, passed through.
        ("gpt-4o-mini", "top_k", 5, True),
        ("mistral/mistral-large-latest", "safe_prompt", True, True),
        # Unknown to litellm: nothing to check against, everything kept.
        ("sim-model-nobody-knows", "reasoning_effort", "low", True),
        ("sim-model-nobody-knows", "logit_bias", {"1": 1}, True),
        # An OpenAI-compatible endpoint serving a model litellm does not know keeps reasoning.
        ("openai/sim-model", "reasoning_effort", "low", True),
    ],
)
def test_drop_table(model: str, param: str, value: Any, kept: bool) -> None:
    out = sanitize_request({"model": model, "messages": MESSAGES, param: value})
    assert (param in out) is kept
    assert out["model"] == model and out["messages"] == MESSAGES


ROUTING_VALUES: dict[str, Any] = {
    "api_base": "http://127.0.0.1:9/v1",
    "base_url": "http://127.0.0.1:9/v1",
    "api_key": "sk-secret-value-123456",
    "api_version": "2024-06-01",
    "organization": "org-1",
    "timeout": 12.5,
    "max_retries": 0,
    "extra_headers": {"x-trace": "1"},
    "extra_body": {"foo": "bar"},
    "metadata": {"job": "nightly"},
    "custom_llm_provider": "openai",
    "mock_response": "pong",
    "stream": False,
}


@pytest.mark.parametrize(
    "model", ["gpt-4o-mini", "openai/gpt-4o-mini", "o3-mini", "mistral/mistral-large-latest"]
)
def test_routing_credentials_and_transport_are_kept(model: str) -> None:
    request = {"model": model, "messages": MESSAGES, **ROUTING_VALUES}
    out = sanitize_request(request)
    for key, value in ROUTING_VALUES.items():
        assert out[key] == value, key


def test_routing_params_are_never_in_a_dropped_set() -> None:
    for model in ("gpt-4o-mini", "o3-mini", "gpt-5", "mistral/mistral-large-latest"):
        assert unsupported_params(model).isdisjoint(ROUTING_PARAMS)


def test_prefixed_name_resolves_to_the_bare_model_rules() -> None:
    assert unsupported_params("openai/gpt-4o-mini") == unsupported_params("gpt-4o-mini")
    assert unsupported_params("gpt-4o-mini", "openai") == unsupported_params("gpt-4o-mini")
    # Asking litellm with the prefixed name directly gives a different, wrong answer.
    prefixed = litellm.get_supported_openai_params(model="openai/gpt-4o-mini")
    assert "reasoning_effort" in prefixed


def test_custom_llm_provider_in_the_request_is_used() -> None:
    request = {"model": "mistral-large-latest", "messages": MESSAGES, "logit_bias": {"1": 1}}
    assert "logit_bias" in sanitize_request(request)  # no provider known: kept
    out = sanitize_request({**request, "custom_llm_provider": "mistral"})
    assert "logit_bias" not in out


def test_never_mutates_the_callers_request() -> None:
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "reasoning_effort": "low",
        "metadata": {"a": [1, 2]},
    }
    before = copy.deepcopy(request)
    out = sanitize_request(request)
    assert request == before
    assert out is not request
    assert "reasoning_effort" in request and "reasoning_effort" not in out
    clean = {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert sanitize_request(clean) is not clean  # always a new dict


def test_logs_once_per_model_and_parameter_and_never_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-live-abcdefghijklmnop"
    request = {"model": "gpt-4o-mini", "messages": MESSAGES, "api_key": secret}
    with caplog.at_level(logging.INFO, logger="llm_api_client"):
        for _ in range(3):
            sanitize_request({**request, "reasoning_effort": "low", "thinking": {"x": secret}})
        sanitize_request({**request, "model": "gpt-4o", "reasoning_effort": "low"})
    messages = [r.getMessage() for r in caplog.records if r.name == "llm_api_client"]
    assert len(messages) == 3  # (gpt-4o-mini, reasoning_effort), (.., thinking), (gpt-4o, ..)
    assert all(secret not in m for m in messages)
    assert sum("reasoning_effort" in m for m in messages) == 2


def test_unsupported_params_is_cached() -> None:
    unsupported_params.cache_clear()
    unsupported_params("gpt-4o-mini")
    unsupported_params("gpt-4o-mini")
    info = unsupported_params.cache_info()
    assert info.hits >= 1 and info.misses == 1
