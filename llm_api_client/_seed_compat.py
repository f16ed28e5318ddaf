"""What llm-api-client 0.1.8 offered beside the batch API, kept for code that still uses it.

``SeedRequestHelpers`` is mixed into ``APIClient``: the request helpers the seed had as methods
(sanitize, truncate, count tokens). ``history_entry`` formats one ``history`` item as the seed
did: the request (credentials redacted), the response as a dict, its text and creation time;
``log_failures`` is the list API's warning about the requests that failed; ``make_list`` is
the list API itself (``make_requests`` and ``make_requests_with_retries``) over ``stream``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from llm_api_client import _settings
from llm_api_client._redact import redact_request
from llm_api_client.prepare.chat_tokens import count_message_tokens
from llm_api_client.prepare.sanitize import sanitize_request
from llm_api_client.prepare.truncate import context_window, fit_to_context

__all__ = ["SeedRequestHelpers", "history_entry", "log_failures", "make_list"]

logger = logging.getLogger("llm_api_client")


class SeedRequestHelpers:
    """The seed's request helpers, as methods of the client."""

    def sanitize_completion_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Drop unsupported parameters and fit the messages to the context window (a copy)."""
        return fit_to_context(sanitize_request(request))

    def remove_unsupported_params(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``request`` without the parameters its model does not support."""
        return sanitize_request(request)

    def truncate_to_max_context_tokens(
        self, messages: list[dict[str, Any]], model: str
    ) -> list[dict[str, Any]]:
        """``messages`` cut to fit ``model``'s input window (oldest turns first)."""
        fitted = fit_to_context({"model": model, "messages": messages})
        return list(fitted["messages"])

    def get_max_context_tokens(self, model: str) -> int:
        """The model's input window in tokens (environment overrides honoured)."""
        return context_window(model).max_input_tokens

    def count_messages_tokens(
        self, messages: list[dict[str, Any]], *, model: str, timeout: float = 10
    ) -> int:
        """Prompt tokens of ``messages`` for ``model`` (tiktoken; ``timeout`` is unused)."""
        return count_message_tokens(messages, model)


def make_list(client: Any, requests: Iterable[Mapping[str, Any]], **options: Any) -> list[Any]:
    """The seed's list call: responses in input order, ``None`` for failures, whose errors go
    to ``client.last_errors``; the requests and responses to ``client.history`` if kept."""
    # Checked before the requests are read: a bad argument must not consume a generator.
    _settings.check(**{k: options[k] for k in ("max_retries", "max_workers", "timeout")})
    requests = list(requests)
    responses: list[Any] = [None] * len(requests)
    client.last_errors = {}
    if not requests:
        return responses
    with client.stream(requests, **options) as stream:
        for result in stream:
            responses[result.index] = result.response
            if result.error is not None:
                client.last_errors[result.index] = result.error
    log_failures(client.last_errors, len(requests))
    if client.keep_history:
        client.history.extend(map(history_entry, requests, responses))
    return responses


def history_entry(request: Any, response: Any) -> dict[str, Any]:
    """One ``history`` item: the request (redacted), the response dict, its text and time."""
    return {
        "request": redact_request(request) if isinstance(request, Mapping) else request,
        "response": response.model_dump() if response is not None else None,
        "content": _content(response),
        "created_at": _created_at(response),
    }


def log_failures(errors: Mapping[int, Exception], total: int) -> None:
    """One warning after a list call with failures, counted by kind (the seed's log line)."""
    if not errors:
        return
    kinds: dict[str, int] = {}
    for error in errors.values():
        kinds[type(error).__name__] = kinds.get(type(error).__name__, 0) + 1
    logger.warning("%d of %d requests failed: %s", len(errors), total, kinds)


def _content(response: Any) -> str | None:
    try:
        return response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None


def _created_at(response: Any) -> str | None:
    created = getattr(response, "created", None)
    if created is None:
        return None
    return datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")
