"""Read a chat completion request: the few fields the simulator needs, validated like OpenAI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_api_client.simulator.tokens import content_text

MAX_CHOICES = 128  # OpenAI's bound on ``n``


class BadRequest(ValueError):
    """The request is malformed; answered with 400 ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[Mapping[str, Any]]
    n: int
    max_output: int | None  # max_completion_tokens or max_tokens, None when neither is set
    text: str  # the last user message's text, echoed and searched for fault markers
    key: str  # whose request this is in /stats: the ``user`` field, else ``text``
    tools: Any
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: usage in a last chunk


def parse_chat(payload: Any) -> ChatRequest:
    """Validate a decoded request body; raise ``BadRequest`` naming the offending parameter."""
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array of messages.", "messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("Each message must be an object with a 'role'.", "messages")
    stream, include_usage = _streaming(payload)
    text = _last_user_text(messages)
    user = payload.get("user")
    return ChatRequest(
        model=model,
        messages=messages,
        n=_choices(payload.get("n")),
        max_output=_max_output(payload),
        text=text,
        key=user if isinstance(user, str) and user else text,
        tools=payload.get("tools"),
        stream=stream,
        include_usage=include_usage,
    )


def _streaming(payload: Mapping[str, Any]) -> tuple[bool, bool]:
    """``stream`` and ``stream_options.include_usage``, checked the way OpenAI checks them."""
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(f"stream must be a boolean, got {stream!r}.", "stream")
    options = payload.get("stream_options")
    if options is None:
        return bool(stream), False
    if not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object.", "stream_options")
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise BadRequest("include_usage must be a boolean.", "stream_options.include_usage")
    return True, bool(include_usage)


def _last_user_text(messages: list[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _choices(n: Any) -> int:
    if n is None:
        return 1
    if not is_int(n) or not 1 <= n <= MAX_CHOICES:
        raise BadRequest(f"n must be an integer in [1, {MAX_CHOICES}], got {n!r}.", "n")
    return int(n)


def _max_output(payload: Mapping[str, Any]) -> int | None:
    for param in ("max_completion_tokens", "max_tokens"):
        value = payload.get(param)
        if value is None:
            continue
        if not is_int(value) or value < 1:
            raise BadRequest(f"{param} must be a positive integer, got {value!r}.", param)
        return int(value)
    return None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
