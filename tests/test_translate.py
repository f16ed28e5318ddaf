"""translate_exception: every outside exception becomes one of ours, keeping its data."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import httpx
import openai
import pytest

from llm_api_client import _offline, errors
from llm_api_client.providers.translate import (
    class_for_status,
    mapped_class,
    parse_retry_after,
    translate_exception,
)

litellm = _offline.litellm()

# Every exception class litellm defines -> the class of ours it must become. A class litellm adds
# later is missing here and fails test_every_litellm_exception_class_is_expected: decide its row.
EXPECTED: dict[str, type[errors.LLMAPIClientError]] = {
    "AuthenticationError": errors.AuthenticationError,
    "CallerCredentialAuthenticationError": errors.AuthenticationError,
    "NotFoundError": errors.NotFoundError,
    "BadRequestError": errors.BadRequestError,
    "ImageFetchError": errors.BadRequestError,
    "VectorStoreSearchError": errors.BadRequestError,
    "MalformedRequestFieldError": errors.BadRequestError,
    "UnsupportedEndpointError": errors.BadRequestError,
    "EndpointNotSupportedByModelError": errors.BadRequestError,
    "UnprocessableEntityError": errors.UnprocessableEntityError,
    "Timeout": errors.APITimeoutError,
    "PermissionDeniedError": errors.PermissionDeniedError,
    "RateLimitError": errors.RateLimitError,
    "CallerCredentialRateLimitError": errors.RateLimitError,
    "ContextWindowExceededError": errors.ContextLengthExceededError,
    "PaymentRequiredError": errors.PaymentRequiredError,
    "RejectedRequestError": errors.BadRequestError,
    "ContentPolicyViolationError": errors.ContentPolicyViolationError,
    "ServiceUnavailableError": errors.ServiceUnavailableError,
    "BadGatewayError": errors.InternalServerError,
    "InternalServerError": errors.InternalServerError,
    "APIError": errors.ServiceUnavailableError,  # built with status 503 below
    "APIConnectionError": errors.APIConnectionError,
    "APIResponseValidationError": errors.APIError,
    "JSONSchemaValidationError": errors.APIError,
    "OpenAIError": errors.APIError,
    "UnsupportedParamsError": errors.UnsupportedParamsError,
    "ModelNotMappedError": errors.InvalidRequestError,
    "BudgetExceededError": errors.BudgetExceededError,
    "InvalidRequestError": errors.BadRequestError,
    "MockException": errors.ServiceUnavailableError,  # built with status 503 below
    "LiteLLMUnknownProvider": errors.BadRequestError,
    "GuardrailRaisedException": errors.ContentPolicyViolationError,
    "BlockedPiiEntityError": errors.ContentPolicyViolationError,
    "MidStreamFallbackError": errors.ServiceUnavailableError,
    "ModifyResponseException": errors.ContentPolicyViolationError,
    "SensitiveDataRouteException": errors.ContentPolicyViolationError,
}


def litellm_exception_classes() -> dict[str, type[BaseException]]:
    module = litellm.exceptions
    return {
        name: cls
        for name, cls in vars(module).items()
        if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == module.__name__
    }


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return httpx.Response(status, request=request, headers=headers or {})


def build(cls: type[BaseException], status: int = 503) -> BaseException:
    """An instance of any litellm exception class, filling the constructor's required arguments."""
    pool: dict[str, Any] = {
        "message": "boom",
        "model": "gpt-4o-mini",
        "llm_provider": "openai",
        "custom_llm_provider": "openai",
        "status_code": status,
        "failures": [],
        "request_data": {},
        "raw_response": "{}",
        "schema": "{}",
        "current_cost": 2.0,
        "max_budget": 1.0,
        "route_to_model": "local",
        "session_id": "s",
        "entity_type": "EMAIL",
        "guardrail_name": "g",
        "original_exception": None,
        "response": _response(403),
    }
    params = inspect.signature(cls.__init__).parameters
    kwargs = {
        name: pool[name]
        for name, p in params.items()
        if name in pool
        and p.default is inspect.Parameter.empty
        and p.kind is p.POSITIONAL_OR_KEYWORD
    }
    return cls(**kwargs)


def test_every_litellm_exception_class_is_expected() -> None:
    classes = litellm_exception_classes()
    assert set(classes) == set(EXPECTED), "litellm's exception classes changed: update EXPECTED"
    for listed in litellm.LITELLM_EXCEPTION_TYPES:
        assert listed.__name__ in EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_litellm_exception_class_maps(name: str) -> None:
    cls = litellm_exception_classes()[name]
    assert mapped_class(cls) is not None, f"{name} has no row in translate's class table"
    error = translate_exception(build(cls), index=3)
    assert type(error) is EXPECTED[name]
    assert error.index == 3
    assert pickle.loads(pickle.dumps(error)).message == error.message


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, errors.APIError),
        (200, errors.APIError),
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (402, errors.PaymentRequiredError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (408, errors.RequestTimeoutError),
        (409, errors.ConflictError),
        (413, errors.APIStatusError),
        (422, errors.UnprocessableEntityError),
        (429, errors.RateLimitError),
        (500, errors.InternalServerError),
        (502, errors.InternalServerError),
        (503, errors.ServiceUnavailableError),
        (504, errors.InternalServerError),
        (529, errors.InternalServerError),
    ],
)
def test_status_table(status: int | None, expected: type[errors.APIError]) -> None:
    assert class_for_status(status) is expected
    if status is not None and status >= 400:
        error: Any = translate_exception(
            litellm.APIError(status_code=status, message="x", llm_provider="openai", model="m")
        )
        assert type(error) is expected
        assert error.status_code == status


def test_rate_limit_keeps_headers_retry_after_request_id_and_redacts() -> None:
    headers = {
        "retry-after-ms": "1500",
        "x-request-id": "req-1",
        "authorization": "Bearer sk-secretsecret",
        "x-ratelimit-remaining-requests": "0",
    }
    exc = litellm.RateLimitError(
        message="slow down, key sk-abcdefghijkl",
        llm_provider="openai",
        model="gpt-4o-mini",
        response=_response(429, headers),
    )
    error = translate_exception(exc, index=7, model="openai/gpt-4o-mini")
    assert isinstance(error, errors.RateLimitError)
    assert error.status_code == 429
    assert error.retry_after == 1.5
    assert error.request_id == "req-1"
    assert error.provider == "openai"
    assert error.model == "openai/gpt-4o-mini"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert "sk-secret" not in repr(error.headers)
    assert "sk-abcdefghijkl" not in str(error)


def test_litellm_bad_request_for_a_422_becomes_unprocessable() -> None:
    exc = litellm.BadRequestError(
        message="x", model="m", llm_provider="openai", response=_response(422)
    )
    assert type(translate_exception(exc)) is errors.UnprocessableEntityError


def test_bad_request_with_context_length_code_becomes_context_length_exceeded() -> None:
    exc = litellm.BadRequestError(
        message="too long",
        model="m",
        llm_provider="openai",
        response=_response(400),
        body={"code": "context_length_exceeded"},
    )
    assert type(translate_exception(exc)) is errors.ContextLengthExceededError


def test_timeout_without_an_answer_has_no_status() -> None:
    error = translate_exception(litellm.Timeout(message="t", model="m", llm_provider="openai"))
    assert type(error) is errors.APITimeoutError
    assert error.status_code is None


def test_timeout_with_a_504_answer_is_a_server_error() -> None:
    exc = litellm.Timeout(
        message="t",
        model="m",
        llm_provider="openai",
        exception_status_code=504,
        response=_response(504),
    )
    error = translate_exception(exc)
    assert type(error) is errors.InternalServerError
    assert error.status_code == 504


def test_connection_error_has_no_status_even_though_litellm_says_500() -> None:
    error = translate_exception(
        litellm.APIConnectionError(message="reset", llm_provider="openai", model="m")
    )
    assert type(error) is errors.APIConnectionError
    assert error.status_code is None


def test_internal_server_error_keeps_provider_status() -> None:
    exc = litellm.InternalServerError(
        message="overloaded", llm_provider="anthropic", model="m", provider_status_code=529
    )
    assert getattr(translate_exception(exc), "status_code", None) == 529


def _openai_status_error(status: int) -> openai.APIStatusError:
    import httpx2

    request = httpx2.Request("POST", "http://127.0.0.1/v1")
    response = httpx2.Response(status, request=request, headers={"retry-after": "3"})
    return openai.APIStatusError("x", response=response, body={"error": "x"})


def _openai_connection_error() -> openai.APIConnectionError:
    import httpx2

    return openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1/v1"))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: httpx.ConnectError("refused"), errors.APIConnectionError),
        (lambda: httpx.RemoteProtocolError("dropped"), errors.APIConnectionError),
        (lambda: httpx.ReadTimeout("slow"), errors.APITimeoutError),
        (lambda: httpx.ConnectTimeout("slow"), errors.APITimeoutError),
        (
            lambda: httpx.HTTPStatusError(
                "x", request=httpx.Request("GET", "http://h"), response=_response(503)
            ),
            errors.ServiceUnavailableError,
        ),
        (lambda: _openai_status_error(409), errors.ConflictError),
        (_openai_connection_error, errors.APIConnectionError),
        (lambda: TimeoutError("socket"), errors.APITimeoutError),
        (lambda: ConnectionResetError("reset"), errors.APIConnectionError),
        (lambda: KeyError("surprise"), errors.APIError),
        (lambda: RuntimeError("surprise"), errors.APIError),
    ],
)
def test_transport_and_unknown_errors(make: Any, expected: type[errors.APIError]) -> None:
    error = translate_exception(make())
    assert type(error) is expected


def test_openai_status_error_keeps_retry_after_seconds() -> None:
    error: Any = translate_exception(_openai_status_error(429))
    assert error.retry_after == 3.0


def test_unknown_exception_keeps_its_type_name() -> None:
    error = translate_exception(KeyError("surprise"))
    assert "KeyError" in str(error)
    assert mapped_class(KeyError) is None


def test_our_own_error_passes_through_with_index() -> None:
    mine = errors.RateLimitDelayExceeded("waited too long")
    assert translate_exception(mine, index=4) is mine
    assert mine.index == 4


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "0"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "nan", "retry-after": "9"}, 9.0),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "1e999"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:40 GMT"}, 20.0),  # NOW + 20 s
        # a date in the past (clock skew?) tells nothing: the backoff decides
        ({"retry-after": "Tue, 14 Nov 2023 22:13:00 GMT"}, None),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:40"}, None),  # no zone
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=lambda: NOW) == expected


# Through the real litellm.completion against a scripted endpoint on loopback.


@pytest.fixture(scope="module")
def stub() -> Any:
    from tests._provider_stub import ProviderStub

    with ProviderStub() as server:
        yield server


def _call(stub: Any, model: str, **extra: Any) -> Any:
    try:
        litellm.completion(
            model=f"openai/{model}",
            messages=[{"role": "user", "content": "hi"}],
            api_base=stub.base_url,
            api_key="sk-test-not-a-secret",
            max_retries=0,
            **extra,
        )
    except Exception as exc:
        return translate_exception(exc, index=1, model=model)
    raise AssertionError("expected an error")


@pytest.mark.parametrize(
    ("model", "expected", "status"),
    [
        ("status-429", errors.RateLimitError, 429),
        ("ctx", errors.ContextLengthExceededError, 400),
        ("status-400", errors.BadRequestError, 400),
        ("status-401", errors.AuthenticationError, 401),
        ("status-403", errors.PermissionDeniedError, 403),
        ("status-404", errors.NotFoundError, 404),
        ("status-409", errors.ConflictError, 409),
        ("status-422", errors.UnprocessableEntityError, 422),
        ("status-500", errors.InternalServerError, 500),
        ("status-503", errors.ServiceUnavailableError, 503),
        ("drop", errors.APIConnectionError, None),
    ],
)
def test_real_litellm_errors(
    stub: Any, model: str, expected: type[Any], status: int | None
) -> None:
    error: Any = _call(stub, model)
    assert type(error) is expected
    assert error.status_code == status
    assert error.index == 1
    if status is not None:
        assert error.request_id is not None


def test_real_litellm_429_carries_retry_after(stub: Any) -> None:
    error = _call(stub, "status-429")
    assert error.retry_after == 1.5
    assert error.provider == "openai"


def test_real_litellm_timeout(stub: Any) -> None:
    error = _call(stub, "slow", timeout=0.3)
    assert type(error) is errors.APITimeoutError


def test_real_litellm_connection_refused() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    try:
        litellm.completion(
            model="openai/ok",
            messages=[{"role": "user", "content": "hi"}],
            api_base=f"http://127.0.0.1:{port}/v1",
            api_key="sk-test-not-a-secret",
            max_retries=0,
        )
    except Exception as exc:
        error: Any = translate_exception(exc)
    assert type(error) is errors.APIConnectionError
    assert error.status_code is None
