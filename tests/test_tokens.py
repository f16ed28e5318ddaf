"""Token counting: encodings, agreement with litellm.token_counter, images, batch, limits."""

from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from tiktoken_ext import openai_public

from llm_api_client import _offline
from llm_api_client.prepare import chat_tokens
from llm_api_client.prepare.chat_tokens import (
    count_message_tokens,
    count_request_tokens,
    count_text,
    encoding_for_model,
    encoding_name_for_model,
)
from llm_api_client.prepare.image_sizes import image_tiles, image_tokens

litellm = _offline.litellm()


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("azure/eu/gpt-4o", "o200k_base"),
        ("openrouter/openai/gpt-4o", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-mini", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("gpt-6.2", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("GPT-4O", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("azure/gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("ft:gpt-3.5-turbo:acme::x", "cl100k_base"),
        # Other providers: the documented cl100k_base approximation.
        ("anthropic/claude-3-5-sonnet-20240620", "cl100k_base"),
        ("claude-3-haiku-20240307", "cl100k_base"),
        ("gemini/gemini-1.5-pro", "cl100k_base"),
        ("mistral/mistral-large-latest", "cl100k_base"),
        ("openai/sim-model", "cl100k_base"),
        ("", "cl100k_base"),
    ],
)
def test_encoding_per_model_family(model: str, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding
    assert encoding_for_model(model).name == encoding


def test_encoding_is_cached() -> None:
    assert encoding_for_model("gpt-4o") is encoding_for_model("openai/gpt-4o-mini")


def test_encodings_load_without_a_network(monkeypatch: pytest.MonkeyPatch) -> None:
    assert os.path.isdir(os.environ["TIKTOKEN_CACHE_DIR"])

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tiktoken tried to download")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(requests.Session, "request", no_network)
    for constructor in (openai_public.cl100k_base, openai_public.o200k_base):
        assert constructor()["name"] in ("cl100k_base", "o200k_base")  # read from the cache dir


# --------------------------------------------------------------------------------------------
# Agreement with litellm.token_counter over a table of message shapes.


def _png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    header += struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00" + b"\x00" * 4
    return "data:image/png;base64," + base64.b64encode(header).decode()


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "options": {"type": "object", "properties": {"exact": {"type": "boolean"}}},
            },
            "required": ["city"],
        },
    },
}
PING = {"type": "function", "function": {"name": "ping"}}

SHAPES: dict[str, list[dict[str, Any]]] = {
    "plain": [{"role": "user", "content": "Hello, how are you?"}],
    "system": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
    ],
    "names": [
        {"role": "user", "name": "alice", "content": "Hi"},
        {"role": "assistant", "name": "bot", "content": "Hello alice"},
    ],
    "multi-part text": [
        {"role": "user", "content": [{"type": "text", "text": "Describe"},
                                     {"type": "text", "text": " it"}]}
    ],
    "tool calls": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ],
    "legacy function call": [
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "42"},
    ],
    "long text (chunked)": [{"role": "user", "content": "word " * 3000 + "x" * 5000}],
    "unicode": [{"role": "user", "content": "héllo 世界 🎉 " * 50}],
    "special tokens as text": [{"role": "user", "content": "<|endoftext|> <|im_start|>"}],
    "image 512": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is it"},
                {"type": "image_url", "image_url": {"url": _png(512, 512)}},
            ],
        }
    ],
    "image 1024 auto": [
        {"role": "user", "content": [{"type": "image_url",
                                      "image_url": {"url": _png(1024, 1024), "detail": "auto"}}]}
    ],
    "image 2048x4096": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _png(2048, 4096)}}]}
    ],
    "image low": [
        {"role": "user", "content": [{"type": "image_url",
                                      "image_url": {"url": "https://x/y.png", "detail": "low"}}]}
    ],
}  # fmt: skip

OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4", "gpt-3.5-turbo", "openai/gpt-4o-mini", "o3-mini"]
EXTRAS: list[dict[str, Any]] = [
    {},
    {"tools": [WEATHER, PING]},
    {"tools": [WEATHER], "tool_choice": "none"},
    {"tools": [WEATHER], "tool_choice": "auto"},
    {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
]


@pytest.mark.parametrize("model", OPENAI_MODELS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_counts_agree_with_litellm_token_counter(model: str, shape: str) -> None:
    messages = SHAPES[shape]
    for extra in EXTRAS:
        ours = count_message_tokens(messages, model, **extra)
        theirs = litellm.token_counter(model=model, messages=messages, **extra)
        assert ours == theirs, (model, shape, extra)


def test_functions_are_counted_like_the_same_tools() -> None:
    messages = SHAPES["plain"]
    as_tools = count_message_tokens(messages, "gpt-4o", tools=[WEATHER])
    as_functions = count_message_tokens(messages, "gpt-4o", functions=[WEATHER["function"]])
    assert as_functions == as_tools


def test_count_request_tokens_reads_model_messages_and_tools() -> None:
    request = {"model": "gpt-4o", "messages": SHAPES["system"], "tools": [WEATHER]}
    assert count_request_tokens(request) == count_message_tokens(
        SHAPES["system"], "gpt-4o", tools=[WEATHER]
    )


def test_documented_example() -> None:
    assert count_message_tokens([{"role": "user", "content": "Hello!"}], "gpt-4o-mini") == 9


def test_huge_run_of_one_character_is_counted_in_chunks() -> None:
    # Encoded whole, 2 MB of spaces overflows tiktoken's stack (a PanicException).
    encoding = encoding_for_model("gpt-4o")
    assert count_text(" " * 2_000_000, encoding) > 0


def test_unknown_content_parts_are_estimated_not_decoded() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "A" * 4000, "format": "wav"}}
    base = count_message_tokens([{"role": "user", "content": []}], "gpt-4o")
    with_audio = count_message_tokens([{"role": "user", "content": [audio]}], "gpt-4o")
    assert 900 < with_audio - base < 1100  # about 4 characters per token


# --------------------------------------------------------------------------------------------
# Images: OpenAI's tile rule.


@pytest.mark.parametrize(
    ("width", "height", "tiles"),
    [
        (512, 512, 1),
        (513, 512, 2),
        (768, 768, 4),
        (1024, 1024, 4),  # scaled to 768x768
        (2048, 4096, 6),  # fit 1024x2048, then 768x1536: 2 x 3
        (4096, 8192, 6),
        (100, 100, 1),
        (1, 10_000, 4),  # fit 1x2048 (rounded up to one pixel): 1 x 4
        (1920, 1080, 6),  # 1365x768: 3 x 2
    ],
)
def test_image_tiles(width: int, height: int, tiles: int) -> None:
    assert image_tiles(width, height) == tiles


def _gif(width: int, height: int) -> str:
    data = b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 8
    return "data:image/gif;base64," + base64.b64encode(data).decode()


def _jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHH", 17, 8, height, width) + b"\x00" * 10
    data = b"\xff\xd8" + app0 + sof + b"\xff\xd9"
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("image_url", "expected"),
    [
        ({"url": _png(512, 512)}, 85 + 170),
        ({"url": _png(1024, 1024), "detail": "high"}, 85 + 4 * 170),
        ({"url": _png(4096, 4096), "detail": "low"}, 85),
        ({"url": _gif(600, 400)}, 85 + 2 * 170),
        ({"url": _jpeg(1920, 1080)}, 85 + 6 * 170),
        ({"url": "https://example.com/cat.png"}, 765),  # never downloaded: estimate
        ({"url": "https://example.com/cat.png", "detail": "low"}, 85),
        ({"url": "data:image/png;base64,!!!notbase64"}, 765),
        ({"url": "data:image/webp;base64,UklGRg=="}, 765),
        ("https://example.com/cat.png", 765),
    ],
)
def test_image_tokens(image_url: Any, expected: int) -> None:
    assert image_tokens(image_url) == expected


# --------------------------------------------------------------------------------------------
# Batch counting and output reservation.


texts = st.text(max_size=300)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system"]), "content": texts},
    optional={"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True)},
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(message, min_size=1, max_size=5), min_size=1, max_size=5))
def test_messages_add_up(conversations: list[list[dict[str, Any]]]) -> None:
    for conversation in conversations:
        whole = count_message_tokens(conversation, "gpt-4o-mini")
        parts = sum(count_message_tokens([m], "gpt-4o-mini") - 3 for m in conversation)
        assert whole == parts + 3


def test_short_text_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_tokens, "SMALL_TEXT_CACHE_ENTRIES", 4)
    monkeypatch.setattr(chat_tokens, "_short_counts", {})
    encoding = encoding_for_model("gpt-4o")
    counts = [count_text(f"text number {i}", encoding) for i in range(10)]
    assert len(chat_tokens._short_counts) <= 4
    assert counts == [len(encoding.encode_ordinary(f"text number {i}")) for i in range(10)]
