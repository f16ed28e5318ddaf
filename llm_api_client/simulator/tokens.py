"""Count a chat request's prompt tokens the way OpenAI bills them, with tiktoken.

OpenAI frames each message with about 3 tokens (plus 1 for a ``name``) and primes the reply with
3 more (the OpenAI cookbook's ``num_tokens_from_messages``). Encodings are loaded once per
process and counts of repeated texts are cached, so counting stays cheap per request.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import tiktoken

# tiktoken reads TIKTOKEN_CACHE_DIR when it loads an encoding, not at import: this import
# (which points it at litellm's bundled BPE files) only has to come before ``preload``.
from llm_api_client import _offline  # noqa: F401

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3

# Models tiktoken does not know (a simulator accepts any name) count like current OpenAI models.
DEFAULT_ENCODING = "o200k_base"
ENCODINGS = ("o200k_base", "cl100k_base")

_encoding_name_by_model: dict[str, str] = {}


def encoding_name(model: str) -> str:
    """The tiktoken encoding OpenAI uses for ``model`` (o200k_base when tiktoken does not know)."""
    name = _encoding_name_by_model.get(model)
    if name is None:
        try:
            name = tiktoken.encoding_name_for_model(model.rsplit("/", 1)[-1])
        except KeyError:
            name = DEFAULT_ENCODING
        _encoding_name_by_model[model] = name
    return name


def preload() -> None:
    """Load the encodings now (about 0.5 s once per process) rather than on a first request."""
    for name in ENCODINGS:
        tiktoken.get_encoding(name)


@functools.lru_cache(maxsize=16_384)
def count_text(encoding: str, text: str) -> int:
    return len(tiktoken.get_encoding(encoding).encode_ordinary(text))


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def _value_tokens(encoding: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text(encoding, value)
    if isinstance(value, list) and all(isinstance(p, Mapping) and "text" in p for p in value):
        return count_text(encoding, content_text(value))
    # tool_calls, function_call, ...: count their JSON, a close enough stand-in.
    return count_text(encoding, json.dumps(value, separators=(",", ":")))


def count_prompt(model: str, messages: Sequence[Mapping[str, Any]], tools: Any = None) -> int:
    """Prompt tokens of a chat request: message framing, every field's text, and its tools."""
    encoding = encoding_name(model)
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += _value_tokens(encoding, value)
            if key == "name":
                total += TOKENS_PER_NAME
    if tools:
        total += _value_tokens(encoding, tools)
    return total
