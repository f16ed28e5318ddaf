"""The public surface: every exported name exists, and the seed's API is kept."""

from __future__ import annotations

import inspect

import pytest

import llm_api_client
from llm_api_client import APIClient, APIUsageTracker


@pytest.mark.parametrize("name", llm_api_client.__all__)
def test_every_exported_name_exists(name):
    assert getattr(llm_api_client, name) is not None


def test_seed_constructor_keeps_names_defaults_and_order():
    parameters = list(inspect.signature(APIClient).parameters.values())

    seed = [(p.name, p.default) for p in parameters[:4]]

    assert seed == [
        ("max_requests_per_minute", 10_000),
        ("max_tokens_per_minute", 2_000_000),
        ("max_workers", None),
        ("max_delay_seconds", 300),
    ]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("make_requests", {"max_workers": None, "sanitize": True, "timeout": None}),
        (
            "make_requests_with_retries",
            {"max_workers": None, "max_retries": 2, "sanitize": True, "timeout": None},
        ),
    ],
)
def test_seed_methods_keep_their_keyword_defaults(method, expected):
    parameters = inspect.signature(getattr(APIClient, method)).parameters

    assert {name: parameters[name].default for name in expected} == expected


@pytest.mark.parametrize(
    "name",
    [
        "total_cost",
        "total_prompt_tokens",
        "total_completion_tokens",
        "num_api_calls",
        "mean_response_time",
        "response_time_at_percentile",
        "details",
    ],
)
def test_tracker_keeps_the_seed_api(name):
    assert hasattr(APIUsageTracker, name)


def test_client_exposes_tracker_history_and_details():
    client = APIClient(processes=0)

    assert isinstance(client.tracker, APIUsageTracker)
    assert client.history == []
    assert client.details["max_requests_per_minute"] == 10_000
    client.close()


def test_the_seed_module_paths_still_import():
    from llm_api_client.api_client import APIClient as OldClient
    from llm_api_client.api_tracker import APIUsageTracker as OldTracker

    assert OldClient is APIClient and OldTracker is APIUsageTracker


def test_the_seed_request_helpers_work():
    client = APIClient(processes=0)
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello there"}],
        "reasoning_effort": "high",
        "api_key": "sk-kept",
    }

    cleaned = client.sanitize_completion_request(request)

    assert "reasoning_effort" not in cleaned and cleaned["api_key"] == "sk-kept"
    assert "reasoning_effort" in request  # the caller's dict is untouched
    assert client.get_max_context_tokens("gpt-4o-mini") == 128_000
    assert client.count_messages_tokens(request["messages"], model="gpt-4o-mini") > 0
    assert (
        client.truncate_to_max_context_tokens(request["messages"], "gpt-4o-mini")
        == (request["messages"])
    )
    client.close()


def test_version_info_is_a_tuple_of_the_version_numbers():
    info = llm_api_client.__version_info__
    assert isinstance(info, tuple) and all(isinstance(part, int) for part in info)
    assert ".".join(map(str, info)) == llm_api_client.__version__


def test_errors_are_grouped_by_cause():
    from llm_api_client import errors

    never_sent = (
        errors.InvalidRequestError,
        errors.ContextWindowTooSmallError,
        errors.RequestTooLargeError,
        errors.RateLimitDelayExceeded,
        errors.BudgetExceededError,
    )
    assert all(issubclass(cls, errors.NotSentError) for cls in never_sent)
    engine = (errors.BatchTimeoutError, errors.WorkerCrashedError)
    assert all(issubclass(cls, errors.EngineError) for cls in engine)
    for group in (errors.NotSentError, errors.EngineError, errors.APIError):
        assert issubclass(group, errors.LLMAPIClientError)
    assert not issubclass(errors.EngineError, errors.NotSentError)
    assert not issubclass(errors.APIError, (errors.NotSentError, errors.EngineError))


def test_the_old_name_of_the_truncation_error_still_imports():
    from llm_api_client import ContextWindowExceededError, ContextWindowTooSmallError
    from llm_api_client.errors import ContextLengthExceededError

    assert ContextWindowExceededError is ContextWindowTooSmallError
    assert not issubclass(ContextWindowTooSmallError, ContextLengthExceededError)
