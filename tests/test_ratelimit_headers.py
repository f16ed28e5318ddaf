"""Reading providers' rate-limit headers: tables of what they send and what we make of it."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest

from llm_api_client.ratelimit.headers import (
    RateLimitInfo,
    parse_duration,
    parse_rate_limit_headers,
    retry_after_seconds,
)

NOW = 1_700_000_000.0  # wall-clock time the tables are read at


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "20"}, 20.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-10"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-inf"}, None),
        ({"retry-after": "99999999999999999999999999999999999"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": http_date(30)}, 30.0),
        ({"retry-after": http_date(-30)}, None),  # in the past
        ({"retry-after": "Fri, 29 Sep 2023 16:26:27 GMT"}, None),  # long past
        ({"retry-after-ms": "10"}, 0.01),
        ({"retry-after-ms": "10", "retry-after": "20"}, 0.01),  # milliseconds win
        ({"retry-after-ms": "nan", "retry-after": "20"}, 20.0),  # ...when usable
        ({"retry-after-ms": "-5", "retry-after": "20"}, 20.0),
        ({"Retry-After": "7"}, 7.0),
        ({"llm_provider-retry-after": "7"}, 7.0),
        ({"llm_provider-retry-after": "7", "retry-after": "3"}, 3.0),  # the plain name wins
    ],
)
def test_retry_after_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("120ms", 0.12),
        ("1m30.5s", 90.5),
        ("2h", 7200.0),
        ("1h2m3s", 3723.0),
        ("0.5s", 0.5),
        ("17ms", 0.017),
        ("250us", 0.00025),
        ("5ns", 5e-9),
        ("", None),
        ("s", None),
        ("1x", None),
        ("1s garbage", None),
        ("-1s", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_openai_headers() -> None:
    info = parse_rate_limit_headers(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6m0s",
            "content-type": "application/json",
        },
        now=NOW,
    )
    assert info == RateLimitInfo(
        limits={"requests": 60, "tokens": 150_000},
        remaining={"requests": 59, "tokens": 149_984},
        resets={"requests": 1.0, "tokens": 360.0},
        retry_after=None,
    )


def test_anthropic_headers() -> None:
    info = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:32Z",  # NOW + 12 s
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "39000",
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "7000",
            "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:20+00:00",  # NOW
            "anthropic-ratelimit-tokens-limit": "48000",
            "retry-after": "3",
        },
        now=NOW,
    )
    assert info.limits == {
        "requests": 50,
        "input_tokens": 40_000,
        "output_tokens": 8_000,
        "tokens": 48_000,
    }
    assert info.remaining == {"requests": 49, "input_tokens": 39_000, "output_tokens": 7_000}
    assert info.resets == pytest.approx({"requests": 12.0, "output_tokens": 0.0})
    assert info.retry_after == 3.0


@pytest.mark.parametrize(
    "name",
    [
        "x-ratelimit-limit-requests",
        "X-RateLimit-Limit-Requests",
        "llm_provider-x-ratelimit-limit-requests",
        "LLM_PROVIDER-X-RATELIMIT-LIMIT-REQUESTS",
        "anthropic-ratelimit-requests-limit",
        "llm_provider-anthropic-ratelimit-requests-limit",
    ],
)
def test_names_are_case_insensitive_and_may_carry_litellms_prefix(name: str) -> None:
    assert parse_rate_limit_headers({name: "60"}).limits == {"requests": 60}


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "many", ""])
def test_nonsense_amounts_are_ignored(value: str) -> None:
    info = parse_rate_limit_headers(
        {"x-ratelimit-limit-requests": value, "x-ratelimit-remaining-tokens": value}
    )
    assert (info.limits, info.remaining) == ({}, {})


@pytest.mark.parametrize(
    ("headers", "retry_after", "resets"),
    [
        ({"retry-after": "2"}, 2.0, {}),
        (
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"},
            None,
            {"requests": 1.5},
        ),
        (
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "3s",
            },
            None,
            {"requests": 1.0, "tokens": 3.0},
        ),
        ({}, None, {}),
    ],
)
def test_what_a_429_says_about_waiting(
    headers: dict[str, str], retry_after: float | None, resets: dict[str, float]
) -> None:
    info = parse_rate_limit_headers(headers, now=NOW)
    assert info.retry_after == retry_after
    assert info.resets == pytest.approx(resets)


def test_headers_are_normalized_once_per_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer's headers are parsed: the retry-after reading reuses the normalized ones."""
    from llm_api_client.ratelimit import headers as module

    calls = []
    real = module.normalize_headers

    def counted(raw: Any) -> dict[str, str]:
        calls.append(raw)
        return real(raw)

    monkeypatch.setattr(module, "normalize_headers", counted)
    info = parse_rate_limit_headers({"Retry-After-Ms": "1500", "x-ratelimit-limit-requests": "60"})
    assert (info.retry_after, info.limits) == (1.5, {"requests": 60.0})
    assert len(calls) == 1
