"""Fit a request's messages into its model's context window before it is sent.

A prompt that does not fit costs a round trip and a 400 (``context_length_exceeded``), and
for a batch job the useful answer is usually the one to the latest question with as much of
the conversation as fits. ``fit_to_context``:

1. looks up the window: ``MAX_INPUT_TOKENS_OVERRIDE`` (environment) forces the input window;
   else litellm's ``max_input_tokens`` for the model (``providers.models.context_limits``);
   else ``MAX_CONTEXT_TOKENS_FALLBACK`` (environment, default 100,000). Where input and output
   share the window (OpenAI, Anthropic, Mistral, ...: litellm's ``max_input_tokens`` is the
   whole context there), room is reserved for one choice's maximum output
   (``providers.models.output_tokens_per_choice``), capped at the model's
   ``max_output_tokens``;
2. returns the request unchanged (the same object) when it already fits;
3. keeps system (and developer) messages and the latest user message, and drops the oldest
   other turns first; an assistant message with tool calls goes together with its tool
   results, never leaving a result without its call;
4. if that is not enough, cuts the middle out of the longest remaining text (keeping its
   head and tail around a ``[... truncated ...]`` marker) until the request fits;
5. raises ``ContextWindowTooSmallError`` when even that cannot make it fit (tool definitions,
   images or framing alone exceed the window, or ``max_tokens`` leaves no room).

The caller's request is never modified: changed messages are new dicts in a new list.

Example::

    fitted = fit_to_context({"model": "gpt-4o-mini", "messages": long_conversation})
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_api_client._constants import (
    DEFAULT_MAX_CONTEXT_TOKENS_FALLBACK,
    MAX_CONTEXT_TOKENS_FALLBACK_ENV,
    MAX_INPUT_TOKENS_OVERRIDE_ENV,
    TIKTOKEN_CHUNK_CHARS,
    TRUNCATION_MARKER,
)
from llm_api_client._redact import redact_text
from llm_api_client.errors import ContextWindowTooSmallError
from llm_api_client.prepare.chat_tokens import count_request_tokens, encoding_for_model
from llm_api_client.providers import models

__all__ = ["ContextWindow", "context_window", "fit_and_count", "fit_to_context"]

logger = logging.getLogger("llm_api_client")

Request = Mapping[str, Any]
Count = Callable[[Request], int]

_KEPT_ROLES = frozenset({"system", "developer"})
_TOOL_RESULT_ROLES = frozenset({"tool", "function"})
# Shortening rounds before giving up; each round removes at least the remaining excess.
_MAX_SHORTEN_ROUNDS = 64


@dataclass(frozen=True)
class ContextWindow:
    """A model's window. ``shared``: the prompt and the maximum output must fit together."""

    max_input_tokens: int
    max_output_tokens: int | None
    shared: bool
    source: str  # "override", "litellm" or "fallback"

    def reserved_output(self, request: Request) -> int:
        """Output tokens kept free in a shared window (0 when the limits are separate)."""
        if not self.shared:
            return 0
        wanted = models.output_tokens_per_choice(request)  # each of n choices has its own window
        return min(wanted, self.max_output_tokens) if self.max_output_tokens else wanted

    def input_budget(self, request: Request) -> int:
        """Prompt tokens the request may use."""
        return self.max_input_tokens - self.reserved_output(request)


def context_window(model: str, custom_llm_provider: str | None = None) -> ContextWindow:
    """The window for ``model``, honouring the environment overrides (read at every call)."""
    return _context_window(
        model,
        custom_llm_provider,
        os.environ.get(MAX_INPUT_TOKENS_OVERRIDE_ENV),
        os.environ.get(MAX_CONTEXT_TOKENS_FALLBACK_ENV),
    )


@functools.lru_cache(maxsize=4096)
def _context_window(
    model: str, provider: str | None, override: str | None, fallback: str | None
) -> ContextWindow:
    forced = _positive_int(MAX_INPUT_TOKENS_OVERRIDE_ENV, override)
    if forced is not None:
        return ContextWindow(forced, None, shared=False, source="override")
    known = models.context_limits(model, provider)
    if known is not None:
        return ContextWindow(
            known.max_input_tokens, known.max_output_tokens, shared=known.shared, source="litellm"
        )
    limit = _positive_int(MAX_CONTEXT_TOKENS_FALLBACK_ENV, fallback)
    limit = limit or DEFAULT_MAX_CONTEXT_TOKENS_FALLBACK
    logger.warning(
        "litellm does not know the context window of model %r; assuming %d tokens "
        "(set %s to change it).",
        redact_text(model),
        limit,
        MAX_CONTEXT_TOKENS_FALLBACK_ENV,
    )
    return ContextWindow(limit, None, shared=True, source="fallback")


def _positive_int(name: str, value: str | None) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number > 0:
        return number
    logger.warning("Ignoring %s=%r: not a positive integer.", name, value)
    return None


# --------------------------------------------------------------------------------------------


def fit_to_context(request: Request, *, count: Count = count_request_tokens) -> dict[str, Any]:
    """The request with its messages fitted into the model's window (see the module docstring).

    ``count`` counts a request's prompt tokens; inject a fake for tests. Returns the request
    itself when it fits; raises ``ContextWindowTooSmallError`` when it cannot be made to.
    """
    fitted, _ = fit_and_count(request, count=count)
    return fitted if isinstance(fitted, dict) else dict(fitted)


def fit_and_count(request: Request, *, count: Count = count_request_tokens) -> tuple[Request, int]:
    """``fit_to_context`` that also returns the fitted request's prompt tokens (counted once)."""
    provider = request.get("custom_llm_provider")
    window = context_window(request["model"], provider if isinstance(provider, str) else None)
    budget = window.input_budget(request)
    total = count(request)
    if total <= budget:
        return request, total
    if budget <= 0:
        raise _too_large(request, window, total, "max output tokens leave no room for a prompt")
    original = total
    fitted, total = _drop_oldest_turns(request, budget, total, count)
    if total > budget:
        fitted, total = _shorten_longest(fitted, budget, total, count, window, original)
    logger.debug("Truncated a request for %r to %d prompt tokens.", request["model"], total)
    return fitted, total


def _too_large(request: Request, window: ContextWindow, total: int, why: str) -> Exception:
    reserved = window.reserved_output(request)
    room = f" with {reserved} reserved for output" if reserved else ""
    return ContextWindowTooSmallError(
        f"the request cannot fit model {request['model']!r}: its window is "
        f"{window.max_input_tokens} tokens ({window.source}){room}, and the prompt needs "
        f"{total} tokens; {why}. Nothing was sent.",
        model=request["model"],
        prompt_tokens=total,
        max_input_tokens=window.max_input_tokens,
    )


# --- step 1: drop the oldest turns ----------------------------------------------------------


def _droppable_units(messages: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Indices of droppable messages, oldest first; a tool call and its results form one unit."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    units: list[list[int]] = []
    for index, message in enumerate(messages):
        if message.get("role") in _KEPT_ROLES or index == last_user:
            continue
        follows_call = units and units[-1][-1] == index - 1 and _opens_tool_group(messages, index)
        if message.get("role") in _TOOL_RESULT_ROLES and follows_call:
            units[-1].append(index)
        else:
            units.append([index])
    return units


def _opens_tool_group(messages: Sequence[Mapping[str, Any]], index: int) -> bool:
    """Whether the message before ``index`` is a tool call or a tool result of one."""
    before = messages[index - 1]
    return bool(before.get("tool_calls") or before.get("function_call")) or (
        before.get("role") in _TOOL_RESULT_ROLES
    )


def _drop_oldest_turns(
    request: Request, budget: int, total: int, count: Count
) -> tuple[Request, int]:
    messages = list(request["messages"])
    units = _droppable_units(messages)
    costs = _unit_costs(request, messages, units, count)
    dropped: set[int] = set()
    fitted: Request = request
    position = 0
    while total > budget and position < len(units):
        freed, need = 0, total - budget
        while position < len(units) and freed < need:
            dropped.update(units[position])
            freed += costs[position]
            position += 1
        kept = [m for i, m in enumerate(messages) if i not in dropped]
        fitted = {**request, "messages": kept}
        total = count(fitted)  # exact, whatever the estimate said
    return fitted, total


def _unit_costs(
    request: Request, messages: Sequence[Any], units: list[list[int]], count: Count
) -> list[int]:
    """Each unit's tokens: counted alone, minus the cost of a conversation with no messages."""
    model = request["model"]
    empty = count({"model": model, "messages": []})
    return [count({"model": model, "messages": [messages[i] for i in u]}) - empty for u in units]


# --- step 2: shorten the longest text -------------------------------------------------------


def _shorten_longest(
    request: Request, budget: int, total: int, count: Count, window: ContextWindow, original: int
) -> tuple[Request, int]:
    encoding = encoding_for_model(request["model"])
    remove = total - budget
    for _ in range(_MAX_SHORTEN_ROUNDS):
        target = _longest_text(request["messages"])
        if target is None:
            break
        text = _text_at(request["messages"], target)
        shorter = _cut_middle(text, remove, encoding)
        request = {**request, "messages": _replace_text(request["messages"], target, shorter)}
        previous, total = total, count(request)
        if total <= budget:
            return request, total
        # A count that is not the encoding's (a fake, another tokenizer) may shrink slower.
        remove = 2 * remove if total >= previous else total - budget
    raise _too_large(
        request, window, original, f"with every older turn dropped and every text emptied it "
        f"still needs {total} (tool definitions, images or framing are too large)"
    )  # fmt: skip


Target = tuple[int, int | None]  # (message index, content part index or None for a string)


def _longest_text(messages: Sequence[Mapping[str, Any]]) -> Target | None:
    best: Target | None = None
    best_length = 0
    for index, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str) and len(content) > best_length:
            best, best_length = (index, None), len(content)
        elif isinstance(content, list):
            for part_index, part in enumerate(content):
                text = part.get("text") if isinstance(part, Mapping) else None
                if isinstance(text, str) and len(text) > best_length:
                    best, best_length = (index, part_index), len(text)
    return best


def _text_at(messages: Sequence[Mapping[str, Any]], target: Target) -> str:
    index, part = target
    content = messages[index]["content"]
    return str(content if part is None else content[part]["text"])


def _replace_text(
    messages: Sequence[Mapping[str, Any]], target: Target, text: str
) -> list[Mapping[str, Any]]:
    index, part = target
    out = list(messages)
    message = messages[index]
    if part is None:
        out[index] = {**message, "content": text}
    else:
        parts = list(message["content"])
        parts[part] = {**parts[part], "text": text}
        out[index] = {**message, "content": parts}
    return out


def _cut_middle(text: str, remove_tokens: int, encoding: Any) -> str:
    """``text`` without about ``remove_tokens`` tokens from its middle (head and tail kept)."""
    tokens = _encode_chunked(text, encoding)
    marker = len(encoding.encode_ordinary(TRUNCATION_MARKER))
    keep = len(tokens) - remove_tokens - marker
    if keep <= 0:
        return ""
    head = (keep + 1) // 2
    tail = keep - head
    return (
        encoding.decode(tokens[:head])
        + TRUNCATION_MARKER
        + (encoding.decode(tokens[-tail:]) if tail else "")
    )


def _encode_chunked(text: str, encoding: Any) -> list[int]:
    # Whole-text encoding of a multi-megabyte run of one character overflows tiktoken's stack.
    tokens: list[int] = []
    for start in range(0, len(text), TIKTOKEN_CHUNK_CHARS):
        tokens.extend(encoding.encode_ordinary(text[start : start + TIKTOKEN_CHUNK_CHARS]))
    return tokens
