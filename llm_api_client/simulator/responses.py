"""OpenAI's JSON shapes: chat completions and chunks, embeddings, models, errors with headers."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llm_api_client.simulator.limits import REQUESTS, Admission

ECHO_PREFIX = "echo: "
ECHO_CHARS = 200  # the answer quotes this much of the last user message

dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
JSON = "application/json"

# OpenAI's wording per status, for injected failures (types as the API reports them).
_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Simulated bad request.", None),
    401: ("invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
    403: ("invalid_request_error", "You are not allowed to access this model.", None),
    404: ("invalid_request_error", "The model does not exist.", "model_not_found"),
    408: ("server_error", "Request timed out.", None),
    409: ("invalid_request_error", "Simulated conflict.", None),
    422: ("invalid_request_error", "Simulated unprocessable entity.", None),
    429: ("requests", "Rate limit reached for requests (simulated).", "rate_limit_exceeded"),
    500: (
        "server_error",
        "The server had an error while processing your request. Sorry about that!",
        None,
    ),
    502: ("server_error", "Bad gateway.", None),
    503: ("server_error", "The server is overloaded or not ready yet.", None),
    504: ("server_error", "Gateway timeout.", None),
}


def ceil_milliseconds(seconds: float) -> int:
    """Whole milliseconds, rounded up: waiting less than asked would draw another 429.

    A nanosecond of slack keeps float noise (0.6000000001 s) from adding a millisecond.
    """
    return math.ceil(seconds * 1000 - 1e-6)


def json_response(status: int, payload: Any, headers: dict[str, str]) -> web.Response:
    return body_response(status, dumps(payload).encode(), headers)


def body_response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    """A JSON answer already encoded."""
    return web.Response(status=status, body=body, headers=headers, content_type=JSON)


def error_body(message: str, kind: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def status_error(status: int, headers: dict[str, str]) -> web.Response:
    """An injected failure with the body OpenAI sends for that status."""
    kind, message, code = _STATUS_ERRORS.get(
        status,
        (
            "server_error" if status >= 500 else "invalid_request_error",
            f"Simulated error {status}.",
            None,
        ),
    )
    if status == 429:
        headers = {**headers, "retry-after": "1", "retry-after-ms": "1000"}
    return json_response(status, error_body(message, kind, None, code), headers)


def invalid_request(message: str, param: str | None, headers: dict[str, str]) -> web.Response:
    return json_response(400, error_body(message, "invalid_request_error", param, None), headers)


def context_length_exceeded(
    limit: int, prompt: int, max_output: int | None, headers: dict[str, str]
) -> web.Response:
    if max_output:
        detail = (
            f"However, you requested {prompt + max_output} tokens ({prompt} in the messages, "
            f"{max_output} in the completion). Please reduce the length of the messages or "
            "completion."
        )
    else:
        detail = (
            f"However, your messages resulted in {prompt} tokens. "
            "Please reduce the length of the messages."
        )
    message = f"This model's maximum context length is {limit} tokens. {detail}"
    body = error_body(message, "invalid_request_error", "messages", "context_length_exceeded")
    return json_response(400, body, headers)


def input_too_long(limit: int, tokens: int, headers: dict[str, str]) -> web.Response:
    """An embeddings input over the model's length: OpenAI's 400 for it."""
    message = (
        f"This model's maximum context length is {limit} tokens, however you requested {tokens} "
        f"tokens ({tokens} in your prompt; 0 for the completion). Please reduce your prompt; "
        "or completion length."
    )
    body = error_body(message, "invalid_request_error", "input", "context_length_exceeded")
    return json_response(400, body, headers)


def rate_limited(
    verdict: Admission, model: str, per_minute: float, cost: int, headers: dict[str, str]
) -> web.Response:
    """429 with OpenAI's body and, unless the request can never pass, how long to wait."""
    unit = "RPM" if verdict.limited_by == REQUESTS else "TPM"
    scope = f"{verdict.limited_by} per min ({unit})"
    limit = int(per_minute)
    if verdict.too_large:
        message = (
            f"Request too large for {model} in organization org-simulator on {scope}: "
            f"Limit {limit}, Requested {cost}. The input or output tokens must be reduced in "
            "order to run successfully."
        )
    else:
        wait_ms = ceil_milliseconds(verdict.retry_after)
        wait = f"{wait_ms}ms"
        message = (
            f"Rate limit reached for {model} in organization org-simulator on {scope}: "
            f"Limit {limit}, Used {verdict.used}, Requested {cost}. Please try again in {wait}."
        )
        headers = {
            **headers,
            "retry-after": str(max(1, math.ceil(wait_ms / 1000))),
            "retry-after-ms": str(max(1, wait_ms)),
        }
    body = error_body(message, verdict.limited_by, None, "rate_limit_exceeded")
    return json_response(429, body, headers)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a chat completion answers, streamed or not: ``n`` choices of the same content."""

    completion_id: str
    model: str
    content: str
    n: int
    tokens: int  # output tokens per choice
    finish_reason: str
    prompt_tokens: int
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def completion_tokens(self) -> int:
        return self.n * self.tokens


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(answer: Answer) -> dict[str, Any]:
    """A ``chat.completion`` object; its ``completion_tokens`` count all ``n`` choices."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.content,
        "refusal": None,
        "annotations": [],
    }
    finish = answer.finish_reason
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
        for i in range(answer.n)
    ]
    return {
        **_completion_header(answer, "chat.completion"),
        "choices": choices,
        "usage": usage(answer.prompt_tokens, answer.completion_tokens),
    }


# ``dumps(chat_completion(answer))`` with the constant parts written once: the dict and its
# encoding were a fifth of the simulator's CPU per plain chat completion (the loopback bench).
_COMPLETION_HEAD = '{"id":%s,"object":"chat.completion","created":%d,"model":%s,"service_tier":'
_COMPLETION_HEAD += '"default","system_fingerprint":"fp_simulator","choices":['
_CHOICE = '{"index":%d,"message":{"role":"assistant","content":%s,"refusal":null,'
_CHOICE += '"annotations":[]},"logprobs":null,"finish_reason":%s}'
_COMPLETION_USAGE = (
    '],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
    '{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,'
    '"rejected_prediction_tokens":0}}}'
)


def chat_completion_body(answer: Answer) -> bytes:
    """``chat_completion(answer)`` encoded as ``json_response`` would, byte for byte."""
    content, finish = dumps(answer.content), dumps(answer.finish_reason)
    head = _COMPLETION_HEAD % (dumps(answer.completion_id), answer.created, dumps(answer.model))
    choices = ",".join(_CHOICE % (i, content, finish) for i in range(answer.n))
    prompt, completion = answer.prompt_tokens, answer.completion_tokens
    return (head + choices + _COMPLETION_USAGE % (prompt, completion, prompt + completion)).encode()


def chat_chunk(answer: Answer, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk``: one event of a streamed answer (``extra``: its ``usage``)."""
    return {**_completion_header(answer, "chat.completion.chunk"), "choices": choices, **extra}


def chunk_choice(index: int, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _completion_header(answer: Answer, kind: str) -> dict[str, Any]:
    return {
        "id": answer.completion_id,
        "object": kind,
        "created": answer.created,
        "model": answer.model,
        "service_tier": "default",
        "system_fingerprint": "fp_simulator",
    }


def embedding_list(model: str, vectors: list[Any], prompt_tokens: int) -> dict[str, Any]:
    """``/v1/embeddings``' answer; ``vectors`` are float lists or base64 strings."""
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_list(models: tuple[str, ...], created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_entry(m, created) for m in models]}


def model_entry(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": "simulator"}
