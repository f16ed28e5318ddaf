"""The coordinator's one entry point: validate, sanitize, fit and price a request.

``prepare_request`` runs in the coordinator for every request of a batch, before any worker
sees it, so that a malformed request fails at once with a clear ``InvalidRequestError`` (and
nothing is spent on it), and the rate limiter knows what each request costs:
``Cost(input_tokens=<prompt tokens>, output_tokens=<max output tokens>)``.

Pipeline: validate -> ``sanitize_request`` -> ``fit_to_context`` -> count. With
``sanitize=False`` the request is validated and counted as given. A streamed request first asks
for its usage in the last chunk (``streamed``). An embedding request (``input`` instead of
``messages``) is validated and counted as given (``embedding``): its cost has no output tokens.

It is cheap (a few microseconds plus tiktoken's time for the text): the per-model answers of
litellm are cached, the request is walked once for validation and once for counting, and
JSON-serializability is checked by ``json.dumps`` in C rather than a Python walk.

Example::

    prepared = prepare_request({"model": "gpt-4o-mini", "messages": msgs}, index=7)
    limiter.acquire(prepared.cost)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_api_client._redact import redact_request
from llm_api_client.errors import InvalidRequestError, RequestError
from llm_api_client.prepare.chat_tokens import count_request_tokens
from llm_api_client.prepare.embedding import embedding_tokens, input_problem
from llm_api_client.prepare.sanitize import sanitize_request
from llm_api_client.prepare.streamed import with_stream_usage
from llm_api_client.prepare.truncate import fit_and_count
from llm_api_client.providers.models import max_output_tokens
from llm_api_client.ratelimit.base import Cost
from llm_api_client.request_kind import is_embedding, is_streamed

__all__ = ["PreparedRequest", "prepare_request", "validate_request"]


@dataclass(frozen=True)
class PreparedRequest:
    """A validated request ready to send: its batch position, final dict, cost and model."""

    index: int
    request: dict[str, Any]
    cost: Cost
    model: str

    def __repr__(self) -> str:
        # The request may carry credentials (api_key, auth headers, user-info in api_base).
        return (
            f"PreparedRequest(index={self.index}, request={redact_request(self.request)!r}, "
            f"cost={self.cost!r}, model={self.model!r})"
        )


def prepare_request(request: object, *, index: int, sanitize: bool = True) -> PreparedRequest:
    """Validate, sanitize, fit to the context window and count one request.

    Raises ``InvalidRequestError`` (malformed) or ``ContextWindowTooSmallError`` (cannot fit),
    both carrying ``index``. The caller's request is never modified.
    """
    checked = validate_request(request, index=index)
    if is_embedding(checked):
        return _prepared_embedding(checked, index)
    if is_streamed(checked):
        checked = with_stream_usage(checked)
    try:
        if sanitize:
            final, prompt_tokens = fit_and_count(sanitize_request(checked))
        else:
            final, prompt_tokens = checked, count_request_tokens(checked)
    except RequestError as exc:
        exc.index = index
        raise
    out = final if isinstance(final, dict) and final is not request else dict(final)
    cost = Cost(input_tokens=prompt_tokens, output_tokens=max_output_tokens(out))
    return PreparedRequest(index=index, request=out, cost=cost, model=out["model"])


def _prepared_embedding(request: Mapping[str, Any], index: int) -> PreparedRequest:
    # Nothing to sanitize or truncate: an embedding model takes its inputs whole or refuses.
    cost = Cost(input_tokens=embedding_tokens(request), output_tokens=0)
    return PreparedRequest(index=index, request=dict(request), cost=cost, model=request["model"])


# --------------------------------------------------------------------------------------------
# Validation. Messages name the parameter and the type found, never a value (it could be a key).


# Exact type tests (``type(x) is int``) are faster than isinstance and reject bools (and numpy
# scalars, which json.dumps rejects too).
def _positive_int(value: Any) -> bool:
    return type(value) is int and value > 0


def _non_negative_int(value: Any) -> bool:
    return type(value) is int and value >= 0


def _int(value: Any) -> bool:
    return type(value) is int


def _finite_number(value: Any) -> bool:
    return type(value) in _NUMBER_TYPES and math.isfinite(value)


def _bool(value: Any) -> bool:
    return type(value) is bool


def _encoding_format(value: Any) -> bool:
    return value in ("float", "base64")


def _string(value: Any) -> bool:
    return isinstance(value, str)


_NUMBER_TYPES = frozenset({int, float})
_JSON_SCALAR_TYPES = frozenset({str, int, bool, type(None)})


def _stop(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _list_of_mappings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, Mapping) for item in value)


def _tool_choice(value: Any) -> bool:
    return isinstance(value, str | Mapping)


def _mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def _timeout(value: Any) -> bool:
    # A number of seconds, or an object litellm understands (httpx.Timeout); not a bool or str.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.isfinite(value) and value > 0
    return not isinstance(value, bool | str | list | dict)


# parameter -> (check, what it must be). ``None`` is accepted everywhere (litellm: "not set").
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_tokens": (_positive_int, "a positive integer"),
    "max_completion_tokens": (_positive_int, "a positive integer"),
    "n": (_positive_int, "a positive integer"),
    "temperature": (_finite_number, "a finite number"),
    "top_p": (_finite_number, "a finite number"),
    "presence_penalty": (_finite_number, "a finite number"),
    "frequency_penalty": (_finite_number, "a finite number"),
    "seed": (_int, "an integer"),
    "top_logprobs": (_non_negative_int, "a non-negative integer"),
    "logprobs": (_bool, "a boolean"),
    # A streamed answer is read whole in the worker (providers.streaming), timed per token.
    "stream": (_bool, "a boolean"),
    "stream_options": (_mapping, "a dict"),
    "dimensions": (_positive_int, "a positive integer"),
    "encoding_format": (_encoding_format, "'float' or 'base64'"),
    "parallel_tool_calls": (_bool, "a boolean"),
    "stop": (_stop, "a string or a list of strings"),
    "tools": (_list_of_mappings, "a list of dicts"),
    "functions": (_list_of_mappings, "a list of dicts"),
    "tool_choice": (_tool_choice, "a string or a dict"),
    "logit_bias": (_mapping, "a dict"),
    "metadata": (_mapping, "a dict"),
    "extra_headers": (_mapping, "a dict"),
    "extra_body": (_mapping, "a dict"),
    "user": (_string, "a string"),
    "api_key": (_string, "a string"),
    "api_base": (_string, "a string"),
    "base_url": (_string, "a string"),
    "api_version": (_string, "a string"),
    "timeout": (_timeout, "a positive number of seconds or an httpx.Timeout"),
}

# Parameters litellm accepts as Python objects (an httpx.Timeout, a pydantic class for
# structured output, an exception to mock): excluded from the JSON check.
_PYTHON_OBJECT_PARAMS = frozenset(
    {"timeout", "response_format", "mock_response", "client", "shared_session", "logger_fn"}
)


# Validated by their own walk (``_validate_messages``, ``input_problem``).
_CHECKED_APART = frozenset({"messages", "input"})


def validate_request(request: object, *, index: int | None = None) -> Mapping[str, Any]:
    """Return ``request`` typed as a mapping if it is a well-formed request, else raise.

    A chat request needs ``messages``; an embedding request (``input``, no ``messages``) needs a
    valid ``input`` and cannot be streamed.
    """
    if not isinstance(request, Mapping):
        raise InvalidRequestError(
            f"a request must be a dict, not {type(request).__name__}", index=index
        )
    model = request.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError("'model' must be a non-empty string", index=index)
    if is_embedding(request):
        _validate_embedding(request, index)
    else:
        _validate_messages(request.get("messages"), index)
    for key, value in request.items():
        _validate_param(key, value, index)
    return request


def _validate_messages(messages: Any, index: int | None) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty list of dicts", index=index)
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"messages[{position}] must be a dict with a string 'role'", index=index
            )
        for key, value in message.items():
            # Plain-text messages (the common case) need no JSON round trip.
            if type(value) is not str and value is not None:
                _check_json(f"messages[{position}][{key!r}]", value, index)


def _validate_embedding(request: Mapping[str, Any], index: int | None) -> None:
    problem = input_problem(request["input"])
    if problem is not None:
        raise InvalidRequestError(f"'input' must be {problem}", index=index)
    if is_streamed(request):
        raise InvalidRequestError("an embedding request cannot be streamed", index=index)


def _validate_param(key: str, value: Any, index: int | None) -> None:
    if value is None:
        return  # litellm reads None as "not set"
    rule = _RULES.get(key)
    if rule is not None and not rule[0](value):
        raise InvalidRequestError(f"{key!r} must be {rule[1]}, not {_describe(value)}", index=index)
    kind = type(value)
    if kind in _JSON_SCALAR_TYPES or key in _CHECKED_APART or key in _PYTHON_OBJECT_PARAMS:
        return
    if kind is float:
        if not math.isfinite(value):
            raise InvalidRequestError(f"{key!r} must be a finite number", index=index)
        return
    _check_json(repr(key), value, index)


def _check_json(where: str, value: Any, index: int | None) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"{where} cannot be sent as JSON: {_json_problem(exc)}", index=index
        ) from None


def _json_problem(exc: Exception) -> str:
    # json's messages name the offending type ("Object of type set is not JSON serializable")
    # or the constant ("Out of range float values are not JSON compliant"), never a value.
    return str(exc).split(":")[0] if isinstance(exc, ValueError) else str(exc)


def _describe(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{type(value).__name__} {value!r}"  # numbers and booleans are never secrets
    return type(value).__name__
