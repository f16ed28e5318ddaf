"""The one boundary where litellm's, openai's and httpx's exceptions become ours.

Callers write ``raise translate_exception(exc, index=i, model=m) from exc`` (or keep the returned
error in a result). The mapping goes by class first, walking the outside exception's MRO through
``_CLASS_TABLE``; for the generic classes (litellm's ``APIError``, openai's ``APIStatusError``,
httpx's ``HTTPStatusError``, ...) it goes by the HTTP status the provider answered. Anything
unknown becomes an ``APIError`` carrying the original type's name, never swallowed.

Every translated error keeps ``status_code``, ``provider``, ``model``, ``request_id``,
``headers`` (normalized by ``answers.normalize_headers``, as a success's are, then redacted),
``body`` and ``retry_after`` (seconds, from ``retry-after-ms`` or ``retry-after``), and its
message is redacted.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from llm_api_client import _offline, errors
from llm_api_client._redact import redact_text
from llm_api_client.providers.answers import normalize_headers, request_id
from llm_api_client.ratelimit.headers import retry_after_seconds

litellm = _offline.litellm()

import httpx  # noqa: E402 - after _offline, like litellm
import openai  # noqa: E402

httpx2: Any
try:  # openai >= 3 ships its own fork of httpx; older openai uses httpx itself
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed openai
    httpx2 = None

__all__ = [
    "class_for_status",
    "mapped_class",
    "parse_retry_after",
    "translate_exception",
]


class _ByStatus:
    """Marker in the class table: the target class is decided by the HTTP status."""

    def __init__(self, default: type[errors.LLMAPIClientError]) -> None:
        self.default = default  # used when no status is known

    def __repr__(self) -> str:
        return f"by-status(default={self.default.__name__})"


BY_STATUS: Final = _ByStatus(errors.APIError)
# litellm raises Timeout both for "no answer in time" (no response) and for a provider's 408/504
# (with the response attached): with a status it is an HTTP error, without one a timeout.
TIMEOUT_BY_STATUS: Final = _ByStatus(errors.APITimeoutError)
Target = type[errors.LLMAPIClientError] | _ByStatus

_STATUS_TABLE: Final[Mapping[int, type[errors.APIStatusError]]] = {
    400: errors.BadRequestError,
    401: errors.AuthenticationError,
    402: errors.PaymentRequiredError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    408: errors.RequestTimeoutError,
    409: errors.ConflictError,
    422: errors.UnprocessableEntityError,
    429: errors.RateLimitError,
    503: errors.ServiceUnavailableError,
}


def class_for_status(status: int | None) -> type[errors.APIError]:
    """Our class for an HTTP error status; ``APIError`` when there is none or it is not an error."""
    if status is None:
        return errors.APIError
    if status in _STATUS_TABLE:
        return _STATUS_TABLE[status]
    if 500 <= status < 600:
        return errors.InternalServerError
    if 400 <= status < 500:
        return errors.APIStatusError
    return errors.APIError


def _transport_rows(module: Any) -> list[tuple[type[BaseException], Target]]:
    if module is None:
        return []
    return [
        (module.TimeoutException, errors.APITimeoutError),
        (module.TransportError, errors.APIConnectionError),
        (module.HTTPStatusError, BY_STATUS),
        (module.HTTPError, errors.APIConnectionError),
    ]


_le = litellm.exceptions
# Outside class -> ours. Lookup walks the exception's MRO, so a subclass litellm adds later maps
# like its parent; tests/test_translate.py checks every class litellm defines has a row or a
# mapped parent with the expected target.
_CLASS_TABLE: Final[dict[type[BaseException], Target]] = {
    # litellm, specific classes first (the MRO walk makes order irrelevant; this is for reading)
    _le.ContextWindowExceededError: errors.ContextLengthExceededError,
    _le.UnsupportedParamsError: errors.UnsupportedParamsError,
    _le.ContentPolicyViolationError: errors.ContentPolicyViolationError,
    _le.PaymentRequiredError: errors.PaymentRequiredError,
    _le.RejectedRequestError: errors.BadRequestError,
    _le.BadRequestError: BY_STATUS,  # litellm raises it for 400 and for 422
    _le.AuthenticationError: errors.AuthenticationError,
    _le.PermissionDeniedError: errors.PermissionDeniedError,
    _le.NotFoundError: errors.NotFoundError,
    _le.UnprocessableEntityError: errors.UnprocessableEntityError,
    _le.RateLimitError: errors.RateLimitError,
    _le.Timeout: TIMEOUT_BY_STATUS,
    _le.ServiceUnavailableError: errors.ServiceUnavailableError,
    _le.BadGatewayError: errors.InternalServerError,
    _le.InternalServerError: errors.InternalServerError,
    _le.APIConnectionError: errors.APIConnectionError,
    _le.APIResponseValidationError: errors.APIError,
    _le.APIError: BY_STATUS,
    _le.MockException: BY_STATUS,
    _le.OpenAIError: errors.APIError,
    _le.BudgetExceededError: errors.BudgetExceededError,
    _le.ModelNotMappedError: errors.InvalidRequestError,
    # openai, when an exception escapes litellm's own mapping
    openai.APITimeoutError: errors.APITimeoutError,
    openai.APIConnectionError: errors.APIConnectionError,
    openai.APIStatusError: BY_STATUS,
    openai.APIError: BY_STATUS,
    openai.OpenAIError: errors.APIError,
    # the OS: a socket timeout or reset that nothing above wrapped
    builtins.TimeoutError: errors.APITimeoutError,
    builtins.ConnectionError: errors.APIConnectionError,
}
# Guardrails refuse content the way a provider's safety system does.
for _name in (
    "GuardrailRaisedException",
    "BlockedPiiEntityError",
    "ModifyResponseException",
    "SensitiveDataRouteException",
):
    if hasattr(_le, _name):
        _CLASS_TABLE[getattr(_le, _name)] = errors.ContentPolicyViolationError
for _outside, _target in (*_transport_rows(httpx), *_transport_rows(httpx2)):
    _CLASS_TABLE.setdefault(_outside, _target)

_target_cache: dict[type[BaseException], Target | None] = {}


def mapped_class(exc_type: type[BaseException]) -> Target | None:
    """The table's target for ``exc_type`` (or its nearest mapped base); ``None`` if unmapped."""
    try:
        return _target_cache[exc_type]
    except KeyError:
        pass
    target = next((_CLASS_TABLE[k] for k in exc_type.__mro__ if k in _CLASS_TABLE), None)
    _target_cache[exc_type] = target
    return target


def translate_exception(
    exc: BaseException, *, index: int | None = None, model: str | None = None
) -> errors.LLMAPIClientError:
    """Our typed error for ``exc``; use as ``raise translate_exception(e) from e``.

    An error of ours is returned as is (with ``index`` filled in when it had none).
    """
    if isinstance(exc, errors.LLMAPIClientError):
        if exc.index is None:
            exc.index = index
        return exc
    target = mapped_class(type(exc))
    if target is errors.InternalServerError:
        # litellm reports a refused or dropped connection as a 500 it made up; the chain of
        # causes tells whether any HTTP answer came back.
        target = _transport_cause(exc) or target
    # litellm's Timeout says 408 even when nothing answered; only a real response counts there.
    status = _status_of(exc, trust_attribute=target is not TIMEOUT_BY_STATUS)
    cls = _resolve(target, status, exc)
    if not issubclass(cls, errors.APIError):
        return cls(_message(exc, target), index=index)
    headers = _headers_of(exc)
    return cls(
        _message(exc, target),
        index=index,
        status_code=status if issubclass(cls, errors.APIStatusError) else None,
        provider=getattr(exc, "llm_provider", None) or None,
        model=model or _str_or_none(getattr(exc, "model", None)),
        request_id=request_id(headers) or _str_or_none(getattr(exc, "request_id", None)),
        headers=headers,
        body=_body_of(exc),
        retry_after=parse_retry_after(headers),
    )


def _resolve(
    target: Target | None, status: int | None, exc: BaseException
) -> type[errors.LLMAPIClientError]:
    if target is None:
        return errors.APIError
    if isinstance(target, _ByStatus):
        cls: type[errors.LLMAPIClientError] = (
            class_for_status(status) if status is not None else target.default
        )
    else:
        cls = target
    if cls is errors.BadRequestError and _says_context_length_exceeded(exc):
        return errors.ContextLengthExceededError
    return cls


_CONNECTION_TARGETS: Final = (errors.APIConnectionError, errors.APITimeoutError)
_MAX_CAUSES = 8


def _transport_cause(exc: BaseException) -> Target | None:
    """APIConnectionError/APITimeoutError if ``exc`` was caused by no answer; else ``None``."""
    cause = exc.__cause__ or exc.__context__
    for _ in range(_MAX_CAUSES):
        if cause is None or isinstance(cause, openai.APIStatusError):
            return None
        target = mapped_class(type(cause))
        if target in _CONNECTION_TARGETS:
            return target
        cause = cause.__cause__ or cause.__context__
    return None


def _says_context_length_exceeded(exc: BaseException) -> bool:
    body = getattr(exc, "body", None)
    return "context_length_exceeded" in f"{body} {getattr(exc, 'message', '')}"


def _message(exc: BaseException, target: Target | None) -> str:
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    if target is None:  # keep the unknown type's name: it is the only clue
        return redact_text(f"{type(exc).__module__}.{type(exc).__name__}: {text}")
    return redact_text(text)


def _response_of(exc: BaseException) -> Any:
    # httpx's HTTPError.request/response are properties that raise when unset.
    try:
        return getattr(exc, "response", None)
    except RuntimeError:
        return None


def _status_of(exc: BaseException, *, trust_attribute: bool = True) -> int | None:
    """The provider's HTTP status: litellm's provider_status_code, the response, status_code."""
    provider_status = getattr(exc, "provider_status_code", None)
    if isinstance(provider_status, int):
        return provider_status
    response_status = getattr(_response_of(exc), "status_code", None)
    if isinstance(response_status, int) and response_status >= 400:
        return response_status
    status = getattr(exc, "status_code", None) if trust_attribute else None
    return status if isinstance(status, int) and status >= 400 else None


def _headers_of(exc: BaseException) -> dict[str, str]:
    headers = getattr(_response_of(exc), "headers", None)
    if not headers:
        headers = getattr(exc, "headers", None)
    return normalize_headers(headers)


def _body_of(exc: BaseException) -> Any:
    body = getattr(exc, "body", None)
    if body is None or isinstance(body, int | float | bool | dict | list):
        return body
    return redact_text(str(body))


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, else ``retry-after``.

    The rate limiter's header parser decides (one parser for the whole library): seconds or
    an HTTP date; anything unparsable, negative, infinite or implausible gives ``None``, and
    then the retry policy's own backoff applies.
    """
    return retry_after_seconds(headers, now=now())
