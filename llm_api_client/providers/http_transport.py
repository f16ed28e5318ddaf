"""The lean transport: OpenAI-compatible chat and embeddings, sent and read without litellm.

For an OpenAI-compatible endpoint the request body is almost what the user wrote and the answer
is OpenAI's JSON, so ``HTTPTransport`` posts the body itself (one aiohttp session per process,
on an event-loop thread: ``aio_client``) and builds the ``litellm.ModelResponse`` from the
JSON: a fraction of the CPU of a ``litellm.completion`` call. Embedding requests (``input``
instead of ``messages``) go to ``/embeddings`` and are read into the ``EmbeddingResponse``
``litellm.embedding`` returns, by litellm's own converter. ``lean_request`` says which
requests it reproduces exactly as litellm would send them; ``AutoTransport`` (the default)
sends those through it and every other request through ``LiteLLMTransport``.

What litellm does to such a request, and this module does the same way:

- base URL: the request's ``api_base``/``base_url``, else ``OPENAI_BASE_URL``, else
  ``OPENAI_API_BASE``, else OpenAI's; key: ``api_key``, else ``OPENAI_API_KEY``; organisation:
  ``organization``, else ``OPENAI_ORGANIZATION``; ``extra_headers`` and ``extra_body`` merged;
- parameters whose value is ``None`` are not sent; ``tool_choice`` without tools is not sent;
- ``max_tokens`` becomes ``max_completion_tokens`` for o-series and gpt-5 models;
- an embedding request sends ``input``, ``dimensions``, ``encoding_format`` and ``user`` as
  written, whatever the model's mode in the price map (litellm posts any model's to
  ``/embeddings``).

Everything else litellm rewrites (image parts, cache marks, files, models routed to the
Responses API, a pydantic ``response_format``, streaming, any parameter not listed in
``_PASSED_THROUGH``) keeps the request on litellm. So does any litellm customisation: callbacks,
a cache, a replaced ``litellm.completion`` or a global ``litellm.api_base``/``headers``/...,
so the user's hooks see every call (``litellm_is_customised``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx

from llm_api_client import _offline, errors
from llm_api_client._constants import (
    CALLS_PER_SECOND_PER_PROCESS,
    LEAN_CALLS_PER_SECOND_PER_PROCESS,
    TRANSPORTS,
)
from llm_api_client._redact import redact_text
from llm_api_client.providers import aio_client
from llm_api_client.providers.aio_client import seconds
from llm_api_client.providers.answers import Usage
from llm_api_client.providers.litellm_transport import LiteLLMTransport
from llm_api_client.providers.logging_switch import nobody_listens
from llm_api_client.providers.models import resolve
from llm_api_client.providers.pricing import cost_of
from llm_api_client.providers.translate import translate_exception
from llm_api_client.providers.warmup import build_response_types
from llm_api_client.request_kind import is_embedding

__all__ = [
    "TRANSPORTS",
    "AutoTransport",
    "HTTPTransport",
    "lean_request",
    "litellm_is_customised",
    "make_transport",
]

litellm = _offline.litellm()
from litellm.litellm_core_utils.core_helpers import process_response_headers  # noqa: E402
from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (  # noqa: E402
    convert_to_model_response_object,
)
from litellm.litellm_core_utils.llm_response_utils.get_headers import (  # noqa: E402
    get_response_headers,
)

# Compared at call time: a replaced one means "hooked".
_ORIGINAL_COMPLETION = litellm.completion
_ORIGINAL_EMBEDDING = litellm.embedding

_OPENAI_BASE = "https://api.openai.com/v1"
_LEAN_PROVIDERS = frozenset({"openai"})
# OpenAI chat parameters litellm passes to an OpenAI-compatible endpoint as written.
_PASSED_THROUGH = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "n",
        "parallel_tool_calls",
        "presence_penalty",
        "response_format",
        "seed",
        "service_tier",
        "stop",
        "store",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
    }
)
# OpenAI embedding parameters litellm passes to an OpenAI-compatible endpoint as written.
_EMBEDDING_PASSED_THROUGH = frozenset({"dimensions", "encoding_format", "user"})
# litellm's embedding call ignores a request's ``organization`` (it sets a global of the openai
# module, which the SDK's client does not read), so such a request stays on litellm.
_DEFAULT_ENCODING_FORMAT_VARIABLE = "LITELLM_DEFAULT_EMBEDDING_ENCODING_FORMAT"
# Where and how to send, not what: never in the body.
_ROUTING = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "organization",
        "extra_headers",
        "extra_body",
        "timeout",
        "custom_llm_provider",
        "max_retries",
        "num_retries",
    }
)
_EMBEDDING_KEYS = (_EMBEDDING_PASSED_THROUGH | _ROUTING | {"model", "input"}) - {"organization"}
# Reasoning models take fewer sampling parameters; litellm checks those, so they stay on litellm.
_REASONING_PASSED_THROUGH = frozenset(
    {"max_completion_tokens", "max_tokens", "metadata", "n", "response_format", "seed"}
    | {"service_tier", "stop", "store", "tool_choice", "tools", "parallel_tool_calls", "user"}
)
# litellm globals that change what every call sends: while one is set, litellm sends.
_GLOBAL_SETTINGS = ("api_base", "api_key", "openai_key", "organization", "headers", "drop_params")
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "refusal"})


def litellm_is_customised() -> bool:
    """Whether the user hooked or configured litellm: then every call must go through it."""
    if litellm.completion is not _ORIGINAL_COMPLETION or not nobody_listens(litellm):
        return True
    if litellm.embedding is not _ORIGINAL_EMBEDDING:
        return True
    return any(getattr(litellm, name, None) for name in _GLOBAL_SETTINGS)


def lean_request(request: Mapping[str, Any]) -> bool:
    """Whether ``HTTPTransport`` sends ``request`` exactly as litellm would."""
    model = request.get("model")
    if not isinstance(model, str):  # stream=True is no parameter of ours: litellm streams
        return False
    if is_embedding(request):
        return _lean_embedding(request, model)
    model_plan = _plan(model, request.get("custom_llm_provider"))
    if model_plan is None:
        return False
    allowed = _REASONING_PASSED_THROUGH if model_plan[1] else _PASSED_THROUGH
    for key in request:
        if key not in allowed and key not in _ROUTING and key not in ("model", "messages"):
            return False
    if "@" in request_url(request):  # user-info in the URL: litellm's client decides the auth
        return False
    return _plain_messages(request.get("messages")) and _plain_format(request)


def _lean_embedding(request: Mapping[str, Any], model: str) -> bool:
    if _embedding_model(model, request.get("custom_llm_provider")) is None:
        return False
    if os.environ.get(_DEFAULT_ENCODING_FORMAT_VARIABLE):
        return False  # litellm then sends an encoding_format of its own
    keys_known = all(key in _EMBEDDING_KEYS for key in request)
    return keys_known and "@" not in request_url(request)


@functools.lru_cache(maxsize=1024)
def _embedding_model(model: str, named: Any) -> str | None:
    """The bare model of an embedding request the lean path serves; ``None`` otherwise."""
    found = resolve(model, named if isinstance(named, str) and named else None)
    return found[0] if found is not None and found[1] in _LEAN_PROVIDERS else None


@functools.lru_cache(maxsize=1024)
def _plan(model: str, named: Any) -> tuple[str, bool] | None:
    """``(bare model, reasoning?)`` for a model the lean path serves; ``None`` otherwise."""
    found = resolve(model, named if isinstance(named, str) and named else None)
    if found is None or found[1] not in _LEAN_PROVIDERS:
        return None
    bare = found[0]
    if _model_info(bare).get("mode") not in (None, "chat"):
        return None  # litellm sends these elsewhere (the Responses API, embeddings, ...)
    return bare, _is_reasoning(bare)


def _model_info(bare: str) -> Mapping[str, Any]:
    info = litellm.model_cost.get(bare) or litellm.model_cost.get(f"openai/{bare}")
    return info if isinstance(info, Mapping) else {}


def _is_reasoning(bare: str) -> bool:
    if litellm.OpenAIOSeriesConfig().is_model_o_series_model(bare):
        return True
    return bool(litellm.OpenAIGPT5Config.is_model_gpt_5_model(bare))


def _plain_messages(messages: Any) -> bool:
    """Messages litellm sends unchanged: string contents (or text parts), no cache marks."""
    if not isinstance(messages, list) or not messages:
        return False
    for message in messages:
        if not isinstance(message, dict) or not _MESSAGE_KEYS.issuperset(message):
            return False
        content = message.get("content")
        if not (content is None or isinstance(content, str) or _text_parts(content)):
            return False
    return True


def _text_parts(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    return all(isinstance(p, dict) and p.keys() == {"type", "text"} for p in content)


def _plain_format(request: Mapping[str, Any]) -> bool:
    response_format = request.get("response_format")
    return response_format is None or isinstance(response_format, dict)


def request_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body litellm would post for a ``lean_request``."""
    if is_embedding(request):
        return _embedding_body(request)
    bare, reasoning = _plan(request["model"], request.get("custom_llm_provider")) or ("", False)
    body: dict[str, Any] = {"model": bare, "messages": request["messages"]}
    for key, value in request.items():
        if key in _PASSED_THROUGH and value is not None:
            body[key] = value
    if reasoning and "max_tokens" in body:
        body["max_completion_tokens"] = body.pop("max_tokens")
    if not body.get("tools"):
        body.pop("tool_choice", None)
    return _with_extra_body(body, request)


def _embedding_body(request: Mapping[str, Any]) -> dict[str, Any]:
    bare = _embedding_model(request["model"], request.get("custom_llm_provider"))
    body: dict[str, Any] = {"model": bare, "input": request["input"]}
    for key, value in request.items():
        if key in _EMBEDDING_PASSED_THROUGH and value is not None:
            body[key] = value
    return _with_extra_body(body, request)


def _with_extra_body(body: dict[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    extra = request.get("extra_body")
    return body | extra if isinstance(extra, dict) else body


def request_url(request: Mapping[str, Any]) -> str:
    base = (
        request.get("api_base")
        or request.get("base_url")
        or os.environ.get("OPENAI_BASE_URL")
        or os.environ.get("OPENAI_API_BASE")
        or _OPENAI_BASE
    )
    return f"{str(base).rstrip('/')}{_path(request)}"


def _path(request: Mapping[str, Any]) -> str:
    return "/embeddings" if is_embedding(request) else "/chat/completions"


def request_headers(request: Mapping[str, Any]) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    key = request.get("api_key") or os.environ.get("OPENAI_API_KEY")
    if key:
        headers["authorization"] = f"Bearer {key}"
    organization = request.get("organization") or os.environ.get("OPENAI_ORGANIZATION")
    if organization and not is_embedding(request):  # litellm's embedding call sends none
        headers["openai-organization"] = str(organization)
    extra = request.get("extra_headers")
    if isinstance(extra, Mapping):
        headers.update({str(k): str(v) for k, v in extra.items()})
    return headers


class HTTPTransport:
    """Sends ``lean_request``s itself, over this process's aiohttp session (``aio_client``).

    ``complete`` refuses any other request with ``InvalidRequestError`` (``transport="http"``
    fails clearly rather than send something litellm would have sent differently). Holds no
    sockets itself, so it pickles to worker processes as it is.
    """

    calls_per_second_per_process = LEAN_CALLS_PER_SECOND_PER_PROCESS  # for engine.sizing

    def setup(self) -> None:
        build_response_types()
        aio_client.client()

    def complete(self, request: dict[str, Any], *, timeout: Any) -> Any:
        if not lean_request(request):
            raise errors.InvalidRequestError(
                "transport='http' sends plain OpenAI-compatible chat completions and embeddings "
                "only; "
                "use transport='auto' or 'litellm' for this request"
            )
        url = request_url(request)
        body = json.dumps(request_body(request)).encode()
        try:
            answer = aio_client.post(url, body, request_headers(request), seconds(timeout))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _no_answer(exc, request["model"]) from exc
        return read_answer(answer, url, request)

    def __repr__(self) -> str:
        return "HTTPTransport()"


def read_answer(answer: aio_client.Answer, url: str, request: Mapping[str, Any]) -> Any:
    """The ``litellm.ModelResponse`` (``EmbeddingResponse``) for an answer, or our error."""
    model = request["model"]
    if answer.status >= 400:
        raise _status_error(answer, url, model)
    try:
        response = _response(json.loads(answer.content), answer, request)
    except Exception as exc:  # litellm reports an unreadable answer as the provider's 500
        error = errors.InternalServerError(
            f"OpenAIException - unreadable answer: {exc}",
            status_code=500,
            provider="openai",
            model=model,
        )
        raise error from exc
    response._hidden_params.update(_hidden_params(response, answer, url, request))
    return response


def _response(data: Any, answer: aio_client.Answer, request: Mapping[str, Any]) -> Any:
    if not is_embedding(request):
        return litellm.ModelResponse(**data)
    # litellm's own reading of an embeddings answer; a fresh dict of hidden params, as litellm
    # gives each response (the class default is one shared dict).
    response = convert_to_model_response_object(
        response_object=data,
        model_response_object=litellm.EmbeddingResponse(),
        response_type="embedding",
        _response_headers=answer.headers,
    )
    response._hidden_params = {}
    return response


def _hidden_params(
    response: Any, answer: aio_client.Answer, url: str, request: Mapping[str, Any]
) -> dict[str, Any]:
    """What litellm keeps beside an answer that its readers (and ours) look at."""
    usage = Usage.of(response)
    return {
        "custom_llm_provider": "openai",
        "api_base": url.removesuffix(_path(request)),
        "additional_headers": _additional_headers(answer.headers),
        "provider_response_model": None if is_embedding(request) else response.model,
        "response_cost": cost_of(
            _bare_model(request),
            usage.prompt,
            usage.completion,
            usage.cached,
            "openai",
        ),
    }


def _bare_model(request: Mapping[str, Any]) -> str:
    named = request.get("custom_llm_provider")
    if is_embedding(request):
        found = _embedding_model(request["model"], named)
    else:
        plan = _plan(request["model"], named)
        found = plan[0] if plan else None
    return found or str(request["model"])


def _additional_headers(headers: dict[str, str]) -> dict[str, str]:
    # The two steps of litellm's OpenAI handler, so the same names are found in the same places.
    found: dict[str, str] = get_response_headers(process_response_headers(headers))
    return found


def _no_answer(exc: BaseException, model: str) -> errors.LLMAPIClientError:
    """No HTTP answer: a timeout or a connection that failed or dropped, as litellm says."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        cls: type[errors.APIError] = errors.APITimeoutError
    else:
        cls = errors.APIConnectionError
    message = f"OpenAIException - {type(exc).__name__}: {exc}"
    return cls(redact_text(message), provider="openai", model=model)


class ProviderStatusError(httpx.HTTPStatusError):
    """An error status from the provider, carrying what ``translate`` reads of litellm's errors."""

    llm_provider = "openai"

    def __init__(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        self.body = body.get("error", body) if isinstance(body, dict) else body
        self.message = f"OpenAIException - {body}"
        super().__init__(self.message, request=response.request, response=response)


def _status_error(answer: aio_client.Answer, url: str, model: str) -> errors.LLMAPIClientError:
    request = httpx.Request("POST", url)
    response = httpx.Response(
        answer.status, headers=answer.headers, content=answer.content, request=request
    )
    exc = ProviderStatusError(response)
    return translate_exception(exc, model=model)


class AutoTransport:
    """The default: ``HTTPTransport`` for ``lean_request``s, ``LiteLLMTransport`` for the rest.

    The choice is made per attempt in the worker, where the request is sent: it reads that
    process's litellm (a callback or a patch made there counts) and costs a few dictionary
    lookups (the model's plan is cached).
    """

    def __init__(self) -> None:
        self.lean = HTTPTransport()
        self.litellm = LiteLLMTransport()

    def setup(self) -> None:
        self.litellm.setup()
        self.lean.setup()

    @property
    def calls_per_second_per_process(self) -> float:
        """What ``engine.sizing`` plans one process for: the lean path's unless litellm is
        customised (then every request goes through litellm)."""
        if litellm_is_customised():
            return CALLS_PER_SECOND_PER_PROCESS
        return LEAN_CALLS_PER_SECOND_PER_PROCESS

    def complete(self, request: dict[str, Any], *, timeout: Any) -> Any:
        if litellm_is_customised() or not lean_request(request):
            return self.litellm.complete(request, timeout=timeout)
        return self.lean.complete(request, timeout=timeout)

    def __repr__(self) -> str:
        return "AutoTransport()"


def make_transport(name: str) -> Any:
    """The transport ``APIClient(transport=name)`` runs on."""
    if name == "auto":
        return AutoTransport()
    if name == "litellm":
        return LiteLLMTransport()
    if name == "http":
        return HTTPTransport()
    choices = ", ".join(TRANSPORTS)
    raise errors.ConfigurationError(f"transport must be one of {choices}, not {name!r}")
