"""Reading a provider's answers: headers, usage and request ids, the same way everywhere.

Headers come from two places, a success's ``response._hidden_params["additional_headers"]``
(where litellm gives most of them twice, plain and with an ``llm_provider-`` prefix) and a
failure's HTTP response. ``normalize_headers`` is the one reading of both::

    normalize_headers({"LLM_Provider-X-Request-Id": "req-1", "Set-Cookie": "s=1", "a": None})
    # {"x-request-id": "req-1"}

Usage numbers (prompt, completion, cached, reasoning tokens) are read from a response's
``usage``, an object or a dict; what is missing counts 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_api_client._redact import SECRET_KEYS

__all__ = ["PROVIDER_PREFIX", "Usage", "normalize_headers", "request_id", "response_headers"]

# litellm repeats the provider's headers under this prefix in a response's additional_headers.
PROVIDER_PREFIX = "llm_provider-"
# The provider's id of a request: OpenAI's name first, then Anthropic's.
_REQUEST_ID_HEADERS = ("x-request-id", "request-id")


def normalize_headers(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """Headers with lower-case names and string values, ready for any reader of this library.

    litellm's ``llm_provider-`` prefix is removed; where a header comes both ways, the plain one
    wins. Headers without a value and credential headers (``set-cookie``, ``authorization``,
    ...) are dropped: they are never stored or logged. Anything that is not a mapping gives
    ``{}``.
    """
    try:
        items = list(raw.items()) if raw else []
    except (AttributeError, TypeError):
        return {}
    plain: dict[str, str] = {}
    prefixed: dict[str, str] = {}
    for key, value in items:
        name = str(key).lower()
        found = plain
        if name.startswith(PROVIDER_PREFIX):
            name, found = name[len(PROVIDER_PREFIX) :], prefixed
        if value is not None and name not in SECRET_KEYS:
            found[name] = str(value)
    return prefixed | plain


def response_headers(response: Any) -> dict[str, str]:
    """The provider's headers litellm kept on a successful ``response``, normalized."""
    hidden = getattr(response, "_hidden_params", None)
    return normalize_headers(hidden.get("additional_headers") if isinstance(hidden, dict) else None)


def request_id(headers: Mapping[str, str]) -> str | None:
    """The provider's id for the request in normalized ``headers``, if it sent one."""
    return next((headers[name] for name in _REQUEST_ID_HEADERS if headers.get(name)), None)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one answer used; ``cached`` is part of ``prompt``, ``reasoning`` of ``completion``."""

    prompt: int = 0
    completion: int = 0
    cached: int = 0
    reasoning: int = 0

    @classmethod
    def of(cls, response: Any) -> Usage:
        """The usage ``response`` reports (zeros when it reports none)."""
        usage = getattr(response, "usage", None)
        if usage is None:
            return cls()
        return cls(
            prompt=_count(usage, "prompt_tokens"),
            completion=_count(usage, "completion_tokens"),
            cached=_count(_field(usage, "prompt_tokens_details"), "cached_tokens"),
            reasoning=_count(_field(usage, "completion_tokens_details"), "reasoning_tokens"),
        )


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


def _count(value: Any, name: str) -> int:
    return int(_field(value, name) or 0)
