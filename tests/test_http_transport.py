"""The lean transport sends, reads and fails exactly as litellm does: a table run through both.

Each case goes through ``LiteLLMTransport`` and ``HTTPTransport`` to a small recording server on
loopback, which answers what the case says (an answer, an error status, nothing, a dropped
connection, broken JSON). The bodies and the headers the provider reads must be equal, and so
must what the library reads of the answers and the errors.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from llm_api_client import APIClient, _offline, errors
from llm_api_client.call.retry import is_retryable
from llm_api_client.providers.answers import Usage, response_headers
from llm_api_client.providers.http_transport import (
    AutoTransport,
    HTTPTransport,
    lean_request,
    litellm_is_customised,
    make_transport,
)
from llm_api_client.providers.litellm_transport import LiteLLMTransport

litellm = _offline.litellm()

# Headers the provider reads. The SDK's telemetry (user-agent, x-stainless-*) is not compared.
COMPARED_HEADERS = ("authorization", "openai-organization", "content-type", "x-team", "x-trace")
KEY = "sk-test-key"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class RecordingServer:
    """An OpenAI-compatible endpoint that records each request and answers with ``reply``."""

    def __init__(self) -> None:
        self.reply = Reply()
        self.seen: list[Seen] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/embeddings", self._handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(Seen(request.path, headers, body))
        reply = self.reply
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers = {"content-type": "application/json", **reply.headers}
        return web.Response(status=reply.status, body=reply.body, headers=headers)


@pytest.fixture(scope="module")
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as running:
        yield running


@pytest.fixture(scope="module")
def transports() -> dict[str, Any]:
    made = {"litellm": LiteLLMTransport(), "http": HTTPTransport()}
    for transport in made.values():
        transport.setup()
    return made


def answer(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "the answer", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0},
        },
    }
    return data | overrides


ANSWER_HEADERS = {
    "x-request-id": "req-42",
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-remaining-tokens": "199000",
    "x-ratelimit-reset-requests": "120ms",
}


def base(server: RecordingServer, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "api_base": server.base_url,
        "api_key": KEY,
        **extra,
    }


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {
                "type": "object",
                "properties": {"word": {"type": "string"}},
                "required": ["word"],
            },
        },
    }
]
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "word",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"w": {"type": "string"}},
            "required": ["w"],
            "additionalProperties": False,
        },
    },
}

# name -> (request extras, environment)
REQUEST_CASES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "plain": ({}, {}),
    "sampling": (
        {"temperature": 0.2, "top_p": 0.9, "stop": ["\n"], "seed": 7, "n": 2, "user": "u1"},
        {},
    ),
    "max_tokens_kept_for_gpt4o": ({"max_tokens": 50}, {}),
    "max_tokens_renamed_for_o3_mini": ({"model": "openai/o3-mini", "max_tokens": 50}, {}),
    "max_tokens_renamed_for_gpt5": ({"model": "gpt-5-mini", "max_tokens": 50}, {}),
    "none_values_not_sent": ({"temperature": None, "max_tokens": None}, {}),
    "organization_and_extra_headers": (
        {"organization": "org-1", "extra_headers": {"X-Team": "blue", "X-Trace": "t1"}},
        {},
    ),
    "extra_body": ({"extra_body": {"top_k": 5, "chat_template_kwargs": {"a": 1}}}, {}),
    "tools": ({"tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": False}, {}),
    "tool_choice_without_tools": ({"tool_choice": "none"}, {}),
    "response_format_schema": ({"response_format": SCHEMA_FORMAT}, {}),
    "response_format_json": ({"response_format": {"type": "json_object"}}, {}),
    "text_parts_and_history": (
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}]},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ]
        },
        {},
    ),
    "base_url_and_key_from_env": (
        {"api_base": None, "api_key": None},
        {"OPENAI_BASE_URL": "{base}", "OPENAI_API_KEY": "sk-env", "OPENAI_ORGANIZATION": "org-e"},
    ),
    "base_url_from_openai_api_base": ({"api_base": None}, {"OPENAI_API_BASE": "{base}"}),
}


def _without_none_routing(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if not (k in ("api_base", "api_key") and v is None)}


def send_both(
    server: RecordingServer, transports: dict[str, Any], request: dict[str, Any]
) -> dict[str, tuple[Seen, Any]]:
    """Send ``request`` through both transports; what the server saw and what came back."""
    outcomes = {}
    for name, transport in transports.items():
        server.seen.clear()
        try:
            result: Any = transport.complete(request, timeout=5)
        except errors.LLMAPIClientError as exc:
            result = exc
        [seen] = server.seen
        outcomes[name] = (seen, result)
    return outcomes


@pytest.mark.parametrize("case", list(REQUEST_CASES))
def test_both_transports_send_the_same_request(server, transports, monkeypatch, case):
    extras, environment = REQUEST_CASES[case]
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY", "OPENAI_ORGANIZATION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(base=server.base_url))
    server.reply = Reply(body=json.dumps(answer()).encode(), headers=ANSWER_HEADERS)
    request = _without_none_routing(base(server, **extras))
    assert lean_request(request)

    sent = send_both(server, transports, request)

    (lite, _), (lean, _) = sent["litellm"], sent["http"]
    assert lean.path == lite.path == "/v1/chat/completions"
    assert lean.body == lite.body
    assert _compared(lean.headers) == _compared(lite.headers)


def _compared(headers: dict[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in COMPARED_HEADERS if name in headers}


ANSWER_CASES = {
    "text": answer(),
    "tool_call": answer(
        choices=[
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"word": "x"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    ),
    "length_two_choices": answer(
        choices=[
            {"index": i, "message": {"role": "assistant", "content": f"c{i}"}, "finish_reason": r}
            for i, r in enumerate(["length", "stop"])
        ]
    ),
    "no_usage_details": answer(
        usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    ),
}


@pytest.mark.parametrize("case", list(ANSWER_CASES))
def test_both_transports_return_the_same_answer(server, transports, case):
    server.reply = Reply(body=json.dumps(ANSWER_CASES[case]).encode(), headers=ANSWER_HEADERS)

    sent = send_both(server, transports, base(server))

    (_, lite), (_, lean) = sent["litellm"], sent["http"]
    assert type(lean) is type(lite) is litellm.ModelResponse
    assert _read(lean) == _read(lite)


def _read(response: Any) -> dict[str, Any]:
    """What the library and its users read of an answer."""
    headers = response_headers(response)
    return {
        "id": response.id,
        "model": response.model,
        "object": response.object,
        "created": response.created,
        "choices": [
            (c.index, c.finish_reason, c.message.content, c.message.role, _tool_calls(c.message))
            for c in response.choices
        ],
        "usage": Usage.of(response),
        "total_tokens": response.usage.total_tokens,
        "headers": {k: v for k, v in headers.items() if k not in ("date", "content-length")},
        "dumped_keys": sorted(response.model_dump()),
        "cost": response._hidden_params["response_cost"],
        "raw_headers": sorted(response._hidden_params["additional_headers"]),
        "provider": response._hidden_params["custom_llm_provider"],
    }


def _tool_calls(message: Any) -> Any:
    calls = message.tool_calls or []
    return [(c.id, c.type, c.function.name, c.function.arguments) for c in calls]


def _error(status: int, message: str = "nope", code: str | None = None, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return Reply(status=status, body=json.dumps(body).encode(), headers=headers)


ERROR_CASES: dict[str, tuple[Reply, type[errors.LLMAPIClientError]]] = {
    "400": (_error(400), errors.BadRequestError),
    "400_context": (
        _error(400, "maximum context length", code="context_length_exceeded"),
        errors.ContextLengthExceededError,
    ),
    "401": (_error(401), errors.AuthenticationError),
    "403": (_error(403), errors.PermissionDeniedError),
    "404": (_error(404), errors.NotFoundError),
    "408": (_error(408), errors.RequestTimeoutError),
    "409": (_error(409), errors.ConflictError),
    "422": (_error(422), errors.UnprocessableEntityError),
    "429_with_headers": (
        _error(
            429,
            "Rate limit reached",
            **{"retry-after": "7", "x-request-id": "r-9", "x-ratelimit-remaining-requests": "0"},
        ),
        errors.RateLimitError,
    ),
    "429_retry_after_ms": (_error(429, **{"retry-after-ms": "1500"}), errors.RateLimitError),
    "500": (_error(500), errors.InternalServerError),
    "502_not_json": (Reply(status=502, body=b"<html>bad</html>"), errors.InternalServerError),
    "503": (_error(503), errors.ServiceUnavailableError),
    "timeout": (Reply(delay=3.0, body=json.dumps(answer()).encode()), errors.APITimeoutError),
    "dropped_connection": (Reply(drop=True), errors.APIConnectionError),
    "malformed_json": (Reply(body=b'{"id": "x", "choices": ['), errors.InternalServerError),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_both_transports_raise_the_same_errors(server, transports, case):
    reply, expected = ERROR_CASES[case]
    server.reply = reply
    outcomes = {}
    for name, transport in transports.items():
        with pytest.raises(errors.LLMAPIClientError) as caught:
            transport.complete(base(server), timeout=1.0)
        outcomes[name] = _read_error(caught.value)

    assert outcomes["http"] == outcomes["litellm"]
    assert outcomes["http"]["class"] is expected


def _read_error(error: Any) -> dict[str, Any]:
    """What the retry policy, the limiter and the tracker read of an error."""
    headers = getattr(error, "headers", {})
    return {
        "class": type(error),
        "retryable": is_retryable(error),
        "status": getattr(error, "status_code", None),
        "retry_after": getattr(error, "retry_after", None),
        "request_id": getattr(error, "request_id", None),
        "headers": {k: v for k, v in headers.items() if k not in ("date", "content-length")},
        "provider": getattr(error, "provider", None),
    }


# -- embeddings: the same table for /v1/embeddings ----------------------------------------


def embedding_answer(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]},
            {"object": "embedding", "index": 1, "embedding": [0.5, 0.25, -0.75]},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    return data | overrides


def embedding_base(server: RecordingServer, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/text-embedding-3-small",
        "input": ["first text", "second"],
        "api_base": server.base_url,
        "api_key": KEY,
        **extra,
    }


# name -> (request extras, environment), as REQUEST_CASES
EMBEDDING_REQUEST_CASES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "plain": ({}, {}),
    "one_string": ({"input": "just one"}, {}),
    "token_ids": ({"input": [[1, 2, 3], [4]]}, {}),
    "dimensions_user_format": ({"dimensions": 3, "user": "u1", "encoding_format": "float"}, {}),
    "none_values_not_sent": ({"dimensions": None, "user": None}, {}),
    "bare_model_name": ({"model": "text-embedding-ada-002"}, {}),
    "chat_model_name": ({"model": "openai/gpt-4o-mini"}, {}),
    "extra_headers_and_body": (
        {"extra_headers": {"X-Team": "blue"}, "extra_body": {"truncate": "END"}},
        {},
    ),
    "base_url_key_and_organization_from_env": (
        {"api_base": None, "api_key": None},
        {"OPENAI_BASE_URL": "{base}", "OPENAI_API_KEY": "sk-env", "OPENAI_ORGANIZATION": "org-e"},
    ),
}


@pytest.mark.parametrize("case", list(EMBEDDING_REQUEST_CASES))
def test_both_transports_send_the_same_embedding_request(server, transports, monkeypatch, case):
    extras, environment = EMBEDDING_REQUEST_CASES[case]
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY", "OPENAI_ORGANIZATION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(base=server.base_url))
    server.reply = Reply(body=json.dumps(embedding_answer()).encode(), headers=ANSWER_HEADERS)
    request = _without_none_routing(embedding_base(server, **extras))
    assert lean_request(request)

    sent = send_both(server, transports, request)

    (lite, _), (lean, _) = sent["litellm"], sent["http"]
    assert lean.path == lite.path == "/v1/embeddings"
    assert lean.body == lite.body
    assert _compared(lean.headers) == _compared(lite.headers)


EMBEDDING_ANSWER_CASES = {
    "floats": embedding_answer(),
    "base64": embedding_answer(
        data=[{"object": "embedding", "index": 0, "embedding": "AACAPgAAAL8AAAA+"}]
    ),
    "no_usage": {k: v for k, v in embedding_answer().items() if k != "usage"},
    "other_model_answers": embedding_answer(model="text-embedding-3-small-v2"),
}


@pytest.mark.parametrize("case", list(EMBEDDING_ANSWER_CASES))
def test_both_transports_return_the_same_embeddings(server, transports, case):
    body = json.dumps(EMBEDDING_ANSWER_CASES[case]).encode()
    server.reply = Reply(body=body, headers=ANSWER_HEADERS)
    extra = {"encoding_format": "base64"} if case == "base64" else {}

    sent = send_both(server, transports, embedding_base(server, **extra))

    (_, lite), (_, lean) = sent["litellm"], sent["http"]
    assert type(lean) is type(lite) is litellm.EmbeddingResponse
    assert _read_embeddings(lean) == _read_embeddings(lite)


def _read_embeddings(response: Any) -> dict[str, Any]:
    """What the library (``embed``, the tracker, the batch output) and its users read."""
    headers = response_headers(response)
    return {
        "dumped": response.model_dump(),
        "usage": Usage.of(response),
        "headers": {k: v for k, v in headers.items() if k not in ("date", "content-length")},
        "cost": response._hidden_params["response_cost"],
        "raw_headers": sorted(response._hidden_params["additional_headers"]),
        "provider": response._hidden_params["custom_llm_provider"],
        "api_base": response._hidden_params["api_base"],
    }


@pytest.mark.parametrize("case", ["400", "401", "429_with_headers", "500", "timeout"])
def test_both_transports_raise_the_same_embedding_errors(server, transports, case):
    reply, expected = ERROR_CASES[case]
    server.reply = reply
    outcomes = {}
    for name, transport in transports.items():
        with pytest.raises(errors.LLMAPIClientError) as caught:
            transport.complete(embedding_base(server), timeout=1.0)
        outcomes[name] = _read_error(caught.value)

    assert outcomes["http"] == outcomes["litellm"]
    assert outcomes["http"]["class"] is expected


@pytest.mark.parametrize(
    "extras",
    [
        {"model": "cohere/embed-english-v3.0"},
        {"input_type": "search_query"},
        {"encoding_format": "float", "aws_region_name": "x"},
        {"organization": "org-1"},
        {"api_base": "http://user:pw@127.0.0.1/v1"},
    ],
    ids=lambda extras: "-".join(extras),
)
def test_embedding_requests_the_lean_path_does_not_reproduce_stay_on_litellm(extras):
    request = {"model": "text-embedding-3-small", "input": ["a"]}
    assert lean_request(request)
    assert not lean_request(request | extras)


# -- which transport sends -----------------------------------------------------------------


@pytest.mark.parametrize(
    "extras",
    [
        {"stream": True},
        {"model": "anthropic/claude-3-5-haiku-20241022"},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
        {"messages": [{"role": "user", "content": "a", "cache_control": {"type": "ephemeral"}}]},
        {"response_format": type("Schema", (), {})},
        {"logit_bias": {"1": 1}, "mock_response": "hi"},
        {"model": "openai/o3-mini", "temperature": 0.5},
        {"messages": []},
    ],
    ids=lambda extras: "-".join(extras),
)
def test_requests_the_lean_path_does_not_reproduce_stay_on_litellm(extras):
    request = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert lean_request(request)
    assert not lean_request(request | extras)


def test_http_refuses_what_it_cannot_send_without_sending(server, transports):
    server.seen.clear()
    with pytest.raises(errors.InvalidRequestError, match="transport='http'"):
        transports["http"].complete(base(server, stream=True), timeout=5)
    assert server.seen == []


class Counting:
    """Counts the calls each inner transport gets, standing in for both."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: dict[str, Any], *, timeout: Any) -> str:
        self.calls += 1
        return "answer"


def _auto() -> tuple[AutoTransport, Counting, Counting]:
    auto = AutoTransport()
    lean, lite = Counting(), Counting()
    auto.lean, auto.litellm = lean, lite  # type: ignore[assignment]
    return auto, lean, lite


def test_auto_sends_openai_chat_lean_and_the_rest_through_litellm():
    auto, lean, lite = _auto()
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    auto.complete(chat, timeout=1)
    auto.complete(chat | {"model": "anthropic/claude-3-5-haiku-20241022"}, timeout=1)
    auto.complete(chat | {"stream": True}, timeout=1)
    assert (lean.calls, lite.calls) == (1, 2)


def _a_callback(*args: Any, **kwargs: Any) -> None:
    return None


@pytest.mark.parametrize(
    "hook",
    ["success_callback", "callbacks", "cache", "completion", "api_base", "headers"],
)
def test_auto_keeps_every_call_on_litellm_while_the_user_hooks_it(monkeypatch, hook):
    values = {
        "success_callback": [_a_callback],
        "callbacks": [_a_callback],
        "cache": object(),
        "completion": lambda **kwargs: None,
        "api_base": "http://proxy/v1",
        "headers": {"x": "1"},
    }
    assert not litellm_is_customised()
    monkeypatch.setattr(litellm, hook, values[hook])
    assert litellm_is_customised()
    auto, lean, lite = _auto()
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    auto.complete(chat, timeout=1)
    assert (lean.calls, lite.calls) == (0, 1)


def test_a_patched_completion_sees_every_call_of_a_default_client(monkeypatch):
    seen = []

    def fake(**kwargs: Any) -> Any:
        seen.append(kwargs["messages"][0]["content"])
        return litellm.ModelResponse(choices=[{"message": {"content": "patched"}}])

    monkeypatch.setattr(litellm, "completion", fake)
    requests = [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": str(i)}], "api_key": "k"}
        for i in range(5)
    ]
    with APIClient(processes=0, max_workers=2) as client:
        responses = client.make_requests(requests)
    assert [r.choices[0].message.content for r in responses] == ["patched"] * 5
    assert sorted(seen) == [str(i) for i in range(5)]


def test_unknown_transport_names_are_refused():
    with pytest.raises(errors.ConfigurationError, match="auto, litellm, http"):
        APIClient(transport="requests")
    assert [type(make_transport(n)).__name__ for n in ("auto", "litellm", "http")] == [
        "AutoTransport",
        "LiteLLMTransport",
        "HTTPTransport",
    ]
