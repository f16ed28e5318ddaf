"""Reading answers: the one header normaliser, request ids and usage numbers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from llm_api_client.providers.answers import (
    Usage,
    normalize_headers,
    request_id,
    response_headers,
)
from llm_api_client.providers.translate import translate_exception
from llm_api_client.ratelimit.headers import parse_rate_limit_headers, retry_after_seconds

HEADER_TABLE: list[tuple[str, Any, dict[str, str]]] = [
    ("none", None, {}),
    ("empty", {}, {}),
    ("not a mapping", ["x-request-id", "r"], {}),
    ("case", {"X-RateLimit-Limit-Requests": "60"}, {"x-ratelimit-limit-requests": "60"}),
    (
        "values become strings",
        {"x-ratelimit-limit-requests": 60},
        {"x-ratelimit-limit-requests": "60"},
    ),
    ("prefix removed", {"llm_provider-x-request-id": "r"}, {"x-request-id": "r"}),
    ("prefix in any case", {"LLM_Provider-Retry-After": "2"}, {"retry-after": "2"}),
    ("plain wins, prefixed first", {"llm_provider-a": "1", "a": "2"}, {"a": "2"}),
    ("plain wins, plain first", {"a": "2", "llm_provider-a": "1"}, {"a": "2"}),
    ("plain wins across case", {"LLM_PROVIDER-A": "1", "A": "2"}, {"a": "2"}),
    ("none dropped", {"b": None, "c": "3"}, {"c": "3"}),
    ("a none does not hide the prefixed copy", {"a": None, "llm_provider-a": "1"}, {"a": "1"}),
    (
        "secrets dropped",
        {
            "Set-Cookie": "session=1",
            "authorization": "Bearer x",
            "llm_provider-x-api-key": "k",
            "llm_provider-cookie": "c",
            "x-request-id": "r",
        },
        {"x-request-id": "r"},
    ),
    (
        "httpx headers",
        httpx.Headers({"Retry-After": "2", "Set-Cookie": "s=1", "X-Request-Id": "r"}),
        {"retry-after": "2", "x-request-id": "r"},
    ),
]
HEADER_IDS = [case[0] for case in HEADER_TABLE]


@pytest.mark.parametrize(("case", "raw", "expected"), HEADER_TABLE, ids=HEADER_IDS)
def test_normalize_headers_table(case: str, raw: Any, expected: dict[str, str]) -> None:
    assert normalize_headers(raw) == expected


class _ErrorWithHeaders(Exception):
    def __init__(self, headers: Any) -> None:
        super().__init__("failed")
        self.headers = headers


@pytest.mark.parametrize(("case", "raw", "expected"), HEADER_TABLE, ids=HEADER_IDS)
def test_successes_and_errors_read_headers_the_same_way(
    case: str, raw: Any, expected: dict[str, str]
) -> None:
    response = SimpleNamespace(_hidden_params={"additional_headers": raw})
    assert response_headers(response) == expected
    assert dict(translate_exception(_ErrorWithHeaders(raw)).headers) == expected


def test_a_response_without_hidden_params_has_no_headers() -> None:
    assert response_headers(SimpleNamespace()) == {}
    assert response_headers(SimpleNamespace(_hidden_params=None)) == {}


def test_the_rate_limit_parser_reads_through_the_normaliser() -> None:
    raw = {
        "llm_provider-x-ratelimit-limit-requests": "1",
        "X-RateLimit-Limit-Requests": "60",
        "LLM_Provider-X-RateLimit-Remaining-Tokens": "900",
        "x-ratelimit-limit-tokens": None,
        "llm_provider-retry-after": "4",
    }
    info = parse_rate_limit_headers(raw, now=0.0)
    assert dict(info.limits) == {"requests": 60.0}
    assert dict(info.remaining) == {"tokens": 900.0}
    assert info.retry_after == retry_after_seconds(raw, now=0.0) == 4.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "a", "request-id": "b"}, "a"),
        ({"request-id": "b"}, "b"),  # Anthropic's name
        ({"x-request-id": "", "request-id": "b"}, "b"),
        ({}, None),
    ],
)
def test_request_id(headers: dict[str, str], expected: str | None) -> None:
    assert request_id(headers) == expected


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, Usage()),
        ({"prompt_tokens": 5, "completion_tokens": 7}, Usage(5, 7)),
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 40},
                "completion_tokens_details": {"reasoning_tokens": 8},
            },
            Usage(100, 20, 40, 8),
        ),
        (
            SimpleNamespace(
                prompt_tokens=100,
                completion_tokens=None,
                prompt_tokens_details=SimpleNamespace(cached_tokens=40),
                completion_tokens_details=None,
            ),
            Usage(100, 0, 40, 0),
        ),
    ],
    ids=["no usage", "dict", "dict with details", "object with gaps"],
)
def test_usage_of_a_response(usage: Any, expected: Usage) -> None:
    assert Usage.of(SimpleNamespace(usage=usage)) == expected


def test_usage_of_a_litellm_response() -> None:
    from tests.fakes import make_response

    assert Usage.of(make_response("gpt-4o-mini", "hi", 10, 5)) == Usage(10, 5)
    assert Usage.of(None) == Usage()
