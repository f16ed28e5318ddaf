"""Embedding requests: check their ``input`` and count its tokens for the rate limiter.

An embedding request is a dict with ``input`` instead of ``messages`` (``request_kind``): a
string, a list of strings, a list of token ids or a list of such lists, as OpenAI accepts.
Its cost is the tokens of its inputs and no output; each string is counted with tiktoken in the
model's encoding, without the chat framing (there are no messages), and a token-id list counts
its length::

    embedding_tokens({"model": "text-embedding-3-small", "input": ["a cat", "a dog"]})  # 4
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_api_client.prepare.chat_tokens import count_text, encoding_for_model

__all__ = ["MAX_INPUTS", "embedding_tokens", "input_problem"]

# OpenAI's bound on the inputs of one embeddings request.
MAX_INPUTS = 2048


def input_problem(value: Any) -> str | None:
    """What is wrong with an ``input`` value, or ``None`` when it can be sent."""
    items = [value] if isinstance(value, str) or _is_tokens(value) else value
    if not isinstance(items, list) or not items:
        return "a non-empty string or a non-empty list of strings"
    if len(items) > MAX_INPUTS:
        return f"at most {MAX_INPUTS} inputs per request (got {len(items)})"
    if all(isinstance(item, str) and item for item in items):
        return None
    if all(_is_tokens(item) for item in items):
        return None
    return "non-empty strings (or non-empty lists of token ids), not a mix"


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(t) is int for t in value)


def embedding_tokens(request: Mapping[str, Any]) -> int:
    """Tokens of a validated embedding request's inputs, as the provider bills them."""
    value = request["input"]
    items = [value] if isinstance(value, str) or _is_tokens(value) else value
    encoding = encoding_for_model(request["model"])
    return sum(count_text(item, encoding) if isinstance(item, str) else len(item) for item in items)
