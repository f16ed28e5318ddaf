"""One exception tree for everything this library raises or reports.

Grouped by cause, as httpx groups its own: catch a parent to handle a whole kind.

    LLMAPIClientError
    ├── ConfigurationError          bad client settings (negative limits, ...); also a ValueError
    ├── NotSentError                never sent to the provider: nothing was spent on it
    │   ├── RequestError              the request itself cannot be sent
    │   │   ├── InvalidRequestError     not a dict, no model/messages, wrong types, unserializable
    │   │   ├── ContextWindowTooSmallError  cannot be truncated to fit the model's input window
    │   │   │                               (old name: ContextWindowExceededError)
    │   │   └── RequestTooLargeError    costs more than a rate limit can ever admit
    │   ├── RateLimitDelayExceeded    not admitted by the rate limiter within max_delay_seconds
    │   └── BudgetExceededError       dispatch stopped: the spend cap (max_cost) would be passed
    ├── EngineError                 the engine gave the request up, sent or not
    │   ├── BatchTimeoutError         the batch's global timeout ran out before it finished
    │   └── WorkerCrashedError        the worker process died while it was in flight
    └── APIError                    the provider (through litellm) answered with an error
        ├── APIConnectionError        no HTTP answer: refused, reset, dropped
        │   └── APITimeoutError         no answer within the request's timeout
        └── APIStatusError            an HTTP error status; carries status_code, headers, ...
            ├── BadRequestError            400
            │   ├── ContextLengthExceededError  400 context_length_exceeded
            │   ├── UnsupportedParamsError      a parameter the model does not accept
            │   └── ContentPolicyViolationError
            ├── AuthenticationError        401
            ├── PaymentRequiredError       402
            ├── PermissionDeniedError      403
            ├── NotFoundError              404
            ├── RequestTimeoutError        408
            ├── ConflictError              409
            ├── UnprocessableEntityError   422
            ├── RateLimitError             429
            └── InternalServerError        5xx
                └── ServiceUnavailableError  503

Every exception pickles (it crosses from worker processes to the coordinator as the same type)
and never carries a secret: headers are redacted when the exception is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_api_client._redact import redact_headers, redact_text

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchTimeoutError",
    "BudgetExceededError",
    "ConfigurationError",
    "ConflictError",
    "ContentPolicyViolationError",
    "ContextLengthExceededError",
    "ContextWindowExceededError",
    "ContextWindowTooSmallError",
    "EngineError",
    "InternalServerError",
    "InvalidRequestError",
    "LLMAPIClientError",
    "NotFoundError",
    "NotSentError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitDelayExceeded",
    "RateLimitError",
    "RequestError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "WorkerCrashedError",
]


class LLMAPIClientError(Exception):
    """Root of every error this library raises or reports in a result.

    ``index`` is the position of the request in its batch when the error belongs to one request.
    Subclasses keep their data as attributes; all of it is given as keyword arguments so that
    pickling rebuilds the same object in another process.
    """

    def __init__(self, message: str = "", *, index: int | None = None, **data: Any) -> None:
        message = redact_text(message)
        super().__init__(message)
        self.message = message
        self.index = index
        self._data = data
        for key, value in data.items():
            setattr(self, key, value)
        self.remote_traceback: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"remote_traceback": self.remote_traceback}
        return (_rebuild, (type(self), self.message, self.index, self._data), state)

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        self.__dict__.update(state or {})

    def __str__(self) -> str:
        where = f"request {self.index}: " if self.index is not None else ""
        return f"{where}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


def _rebuild(cls: type[LLMAPIClientError], message: str, index: int | None, data: dict[str, Any]):
    return cls(message, index=index, **data)


class ConfigurationError(LLMAPIClientError, ValueError):
    """A client or limiter setting is impossible (a negative limit, zero workers, ...)."""


class NotSentError(LLMAPIClientError):
    """The request was never sent to the provider; nothing was spent on it."""


class RequestError(NotSentError):
    """The request itself was rejected before it was sent (malformed, too long, too costly)."""


class InvalidRequestError(RequestError, ValueError):
    """The request is malformed: not a dict, no ``model`` or ``messages``, wrong types."""


class ContextWindowTooSmallError(RequestError):
    """The request cannot be truncated to fit the model's input window.

    Not the provider's answer (that is ``ContextLengthExceededError``, a 400): the library
    found, before sending, that even the shortest truncation does not fit.
    """


# The name before 0.2: it read like litellm's error of that name, which means the provider's 400.
ContextWindowExceededError = ContextWindowTooSmallError


class RequestTooLargeError(RequestError):
    """The request costs more than one of the rate limits admits in a whole minute."""


class RateLimitDelayExceeded(NotSentError):
    """Not admitted by the rate limiter within ``max_delay_seconds``; it was not sent."""


class BudgetExceededError(NotSentError):
    """Dispatch stopped before the projected cost would pass the spend cap (``max_cost``)."""


class EngineError(LLMAPIClientError):
    """The engine gave the request up: its batch timed out or its worker died."""


class BatchTimeoutError(EngineError):
    """The batch's global ``timeout`` ran out before this request finished."""


class WorkerCrashedError(EngineError):
    """The worker process died while this request was in flight (and it was not re-sent)."""


class APIError(LLMAPIClientError):
    """The provider, reached through litellm, answered with an error or not at all.

    Attributes: ``status_code`` (None without an HTTP answer), ``provider``, ``model``,
    ``request_id``, ``headers`` (redacted), ``body`` and ``retry_after`` (seconds, when the
    provider said how long to wait).
    """

    status_code: int | None = None
    provider: str | None = None
    model: str | None = None
    request_id: str | None = None
    headers: Mapping[str, str] = {}
    body: Any = None
    retry_after: float | None = None

    def __init__(self, message: str = "", *, index: int | None = None, **data: Any) -> None:
        if "headers" in data and data["headers"] is not None:
            data["headers"] = redact_headers(data["headers"])
        super().__init__(message, index=index, **data)


class APIConnectionError(APIError):
    """No HTTP answer: the connection was refused, reset or dropped."""


class APITimeoutError(APIConnectionError):
    """No answer within the request's ``timeout``."""


class APIStatusError(APIError):
    """The provider answered with an HTTP error status."""


class BadRequestError(APIStatusError):
    """400: the provider rejected the request; sending it again would fail again."""


class ContextLengthExceededError(BadRequestError):
    """400 ``context_length_exceeded``: the provider says the prompt does not fit."""


class UnsupportedParamsError(BadRequestError):
    """The model does not accept one of the request's parameters."""


class ContentPolicyViolationError(BadRequestError):
    """The provider refused the content."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class PaymentRequiredError(APIStatusError):
    """402: the account has no credit."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(APIStatusError):
    """404: no such model or endpoint."""


class RequestTimeoutError(APIStatusError):
    """408: the provider timed the request out."""


class ConflictError(APIStatusError):
    """409: a conflicting request was in progress."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: the provider's rate limit was hit; ``retry_after`` says for how long, when known."""


class InternalServerError(APIStatusError):
    """5xx: the provider failed."""


class ServiceUnavailableError(InternalServerError):
    """503: the provider is overloaded or down."""
