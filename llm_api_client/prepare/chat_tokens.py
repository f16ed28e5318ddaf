"""Count a chat request's prompt tokens with tiktoken, the way ``litellm.token_counter`` does.

The coordinator charges every request's prompt against the token bucket before it is sent, so
counting runs once per request of million-request batches and must be fast: texts are encoded
with ``Encoding.encode_ordinary`` (``encode`` would scan for special tokens first) and nothing
here calls litellm.

The arithmetic follows the OpenAI cookbook ("How to count tokens with tiktoken") as litellm
implements it in ``litellm/litellm_core_utils/token_counter.py``, so counts agree with
``litellm.token_counter(model=..., messages=..., tools=...)`` for OpenAI models:

- every message costs 3 tokens of framing plus its string values (``role``, ``content``,
  ``name``, ``tool_call_id``, ...); a ``name`` costs 1 more;
- the reply is primed with 3 tokens;
- an assistant message's ``tool_calls`` / ``function_call`` count their ``arguments`` only;
- tool (or legacy function) definitions are rendered in the TypeScript-like ``namespace
  functions`` form OpenAI uses internally (``tool_render``), plus 9 tokens, minus 4 when a
  system message exists; a named ``tool_choice`` costs 7 plus its name, ``"none"`` costs 1;
- texts longer than ``TIKTOKEN_CHUNK_CHARS`` are encoded in chunks, like litellm, which keeps the
  cost linear (tiktoken's merge loop is quadratic in one regex piece, and a multi-megabyte run of
  one character even overflows its stack);
- images follow OpenAI's documented tile rule when their size is readable from an inline
  ``data:`` URL, else an estimate (``image_sizes``).

Encodings: o200k_base for gpt-4o, chatgpt-4o, gpt-4.1, gpt-4.5, the o-series and gpt-5+;
cl100k_base for gpt-4, gpt-3.5 and the embedding models. Other providers' tokenizers
(Anthropic, Gemini, Mistral, Llama, ...) are not available offline, so they are approximated
with cl100k_base: of the two bundled chat encodings it yields more tokens for the same text
(its vocabulary is half the size of o200k's), and over-charging the rate limiter by a few
percent is safer than drawing 429s. Expect within about 20% of the provider's own count.

Offline: importing ``llm_api_client._offline`` first points ``TIKTOKEN_CACHE_DIR`` at the BPE
files litellm ships, so tiktoken never downloads.

Example::

    >>> count_message_tokens([{"role": "user", "content": "Hello!"}], "gpt-4o-mini")
    9
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import tiktoken

# tiktoken reads TIKTOKEN_CACHE_DIR when it first loads an encoding (tiktoken/load.py), so
# importing _offline anywhere before the first count keeps it offline; this import guarantees it.
from llm_api_client import _offline  # noqa: F401
from llm_api_client._constants import (
    SMALL_TEXT_CACHE_CHARS,
    SMALL_TEXT_CACHE_ENTRIES,
    TIKTOKEN_CHUNK_CHARS,
    UNKNOWN_PART_CHARS_PER_TOKEN,
)
from llm_api_client.prepare.image_sizes import image_tokens
from llm_api_client.prepare.tool_render import format_function_definitions

__all__ = [
    "count_message_tokens",
    "count_request_tokens",
    "count_text",
    "encoding_for_model",
    "encoding_name_for_model",
]

# Framing constants of the OpenAI cookbook, as litellm applies them.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3
TOOLS_OVERHEAD_TOKENS = 9
TOOLS_SYSTEM_DISCOUNT_TOKENS = 4
TOOL_CHOICE_NAMED_TOKENS = 7
TOOL_CHOICE_NONE_TOKENS = 1

_FALLBACK_ENCODING = "cl100k_base"
# Encodings litellm bundles (so they work offline); anything else maps to the nearest of these.
_BUNDLED = frozenset({"o200k_base", "cl100k_base", "p50k_base"})
_ALIASES = {"o200k_harmony": "o200k_base"}  # gpt-oss: o200k plus special tokens we never encode
# gpt-4.1/4.5, gpt-5 and later, o1/o3/o4/...: every OpenAI model since gpt-4o uses o200k_base.
_O200K_NAME = re.compile(
    r"^(?:chatgpt-4o|gpt-4o|gpt-4\.[1-9]|gpt-(?:[5-9]|[1-9]\d+)|o\d+)(?:[.\-:]|$)"
)


@functools.lru_cache(maxsize=4096)
def encoding_name_for_model(model: str) -> str:
    """The tiktoken encoding name used to count ``model``'s tokens (see the module docstring)."""
    name = _bare_model_name(model)
    try:
        found = tiktoken.encoding_name_for_model(name)
    except KeyError:
        # Newer than tiktoken's table: named like a release that uses o200k_base, or not OpenAI.
        return "o200k_base" if _O200K_NAME.match(name) else _FALLBACK_ENCODING
    found = _ALIASES.get(found, found)
    return found if found in _BUNDLED else _FALLBACK_ENCODING


def _bare_model_name(model: str) -> str:
    """``openrouter/openai/gpt-4o`` -> ``gpt-4o``; ``ft:gpt-4o-mini:org::id`` -> ``gpt-4o-mini``."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name


@functools.cache
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The (cached) tiktoken encoding for ``model``; provider prefixes are ignored."""
    return _encoding(encoding_name_for_model(model))


def count_text(text: str, encoding: tiktoken.Encoding) -> int:
    """Tokens of ``text`` without chat framing; long texts are encoded in chunks, like litellm."""
    if len(text) <= SMALL_TEXT_CACHE_CHARS:
        return _count_short(text, encoding)
    encode = encoding.encode_ordinary
    if len(text) <= TIKTOKEN_CHUNK_CHARS:
        return len(encode(text))
    return sum(len(encode(chunk)) for chunk in _chunks(text))


# Short texts recur across a batch (roles, names, system prompts, templates): remember their
# counts per encoding. Bounded: the cache is emptied when full (cheaper than LRU bookkeeping).
_short_counts: dict[tuple[str, str], int] = {}


def _count_short(text: str, encoding: tiktoken.Encoding) -> int:
    key = (encoding.name, text)
    count = _short_counts.get(key)
    if count is None:
        if len(_short_counts) >= SMALL_TEXT_CACHE_ENTRIES:
            _short_counts.clear()
        count = _short_counts[key] = len(encoding.encode_ordinary(text))
    return count


def _chunks(text: str) -> Iterable[str]:
    step = TIKTOKEN_CHUNK_CHARS
    return (text[start : start + step] for start in range(0, len(text), step))


# --------------------------------------------------------------------------------------------
# Gathering: one walk over a request yields its fixed tokens and the texts still to encode.
# The single-request and batch paths share it, so they cannot disagree.


class _Gathered:
    """Tokens known without encoding (framing, images) plus the texts to encode."""

    __slots__ = ("fixed", "texts")

    def __init__(self) -> None:
        self.fixed = 0
        self.texts: list[str] = []


def _gather(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | None = None,
    functions: Sequence[Any] | None = None,
    tool_choice: Any = None,
) -> _Gathered:
    out = _Gathered()
    for message in messages:
        _gather_message(message, out)
    out.fixed += REPLY_PRIMER_TOKENS
    definitions = list(tools or ()) + [{"type": "function", "function": f} for f in functions or ()]
    if definitions:
        has_system = any(m.get("role") == "system" for m in messages)
        out.texts.append(format_function_definitions(definitions))
        out.fixed += TOOLS_OVERHEAD_TOKENS - (TOOLS_SYSTEM_DISCOUNT_TOKENS if has_system else 0)
    _gather_tool_choice(tool_choice, out)
    return out


def _gather_message(message: Mapping[str, Any], out: _Gathered) -> None:
    out.fixed += TOKENS_PER_MESSAGE
    texts = out.texts
    for key, value in message.items():
        if value is None:
            continue
        if isinstance(value, str):
            texts.append(value)
            if key == "name":
                out.fixed += TOKENS_PER_NAME
        elif key == "content" and isinstance(value, list):
            _gather_parts(value, out)
        elif key == "tool_calls" and isinstance(value, list):
            texts.extend(_call_arguments(call) for call in value)
        elif key == "function_call" and isinstance(value, Mapping):
            texts.append(str(value.get("arguments", "")))


def _call_arguments(call: Any) -> str:
    function = call.get("function") if isinstance(call, Mapping) else None
    return str(function.get("arguments", "")) if isinstance(function, Mapping) else ""


def _gather_parts(parts: Sequence[Any], out: _Gathered) -> None:
    for part in parts:
        if isinstance(part, str):
            out.texts.append(part)
        elif not isinstance(part, Mapping):
            continue
        elif part.get("type") in ("text", "input_text"):
            out.texts.append(str(part.get("text") or ""))
        elif part.get("type") == "image_url":
            out.fixed += image_tokens(part.get("image_url"))
        else:
            # Audio, files and unknown parts: a rough estimate from their size, never decoded.
            out.fixed += len(str(part)) // UNKNOWN_PART_CHARS_PER_TOKEN


def _gather_tool_choice(tool_choice: Any, out: _Gathered) -> None:
    if tool_choice == "none" or (
        isinstance(tool_choice, Mapping) and tool_choice.get("type") == "none"
    ):
        out.fixed += TOOL_CHOICE_NONE_TOKENS
        return
    if not isinstance(tool_choice, Mapping):
        return
    function = tool_choice.get("function")
    name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
    if isinstance(name, str):
        out.fixed += TOOL_CHOICE_NAMED_TOKENS
        out.texts.append(name)


# --------------------------------------------------------------------------------------------
# Public counting API.


def count_message_tokens(
    messages: Sequence[Mapping[str, Any]],
    model: str,
    tools: Sequence[Any] | None = None,
    functions: Sequence[Any] | None = None,
    tool_choice: Any = None,
) -> int:
    """Prompt tokens of a chat request: messages, framing, reply primer, tool definitions.

    Example: ``count_message_tokens([{"role": "user", "content": "Hi"}], "gpt-4o")`` is 8.
    """
    gathered = _gather(messages, tools, functions, tool_choice)
    encoding = encoding_for_model(model)
    return gathered.fixed + sum(count_text(text, encoding) for text in gathered.texts)


def count_request_tokens(request: Mapping[str, Any]) -> int:
    """Prompt tokens of a request dict (``model``, ``messages``, optional tools/functions)."""
    return count_message_tokens(
        request["messages"],
        request["model"],
        tools=request.get("tools"),
        functions=request.get("functions"),
        tool_choice=request.get("tool_choice"),
    )
