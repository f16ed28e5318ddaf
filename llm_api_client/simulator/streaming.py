"""Streamed chat completions: OpenAI's server-sent events, one chunk per output token.

A streamed answer is the echo a plain one gets, cut into as many pieces as it has output tokens
(per choice), each piece one ``chat.completion.chunk``::

    data: {..."delta": {"role": "assistant", "content": ""}...}   ┐ after latency_ms: the time
    data: {..."delta": {"content": "ec"}...}                       ┘ to first token
    data: {..."delta": {"content": "ho"}...}        one stream_token_delay_ms later, and so on
    data: {..."delta": {"content": "!"}, "finish_reason": "stop"}   the last token
    data: {..."choices": [], "usage": {...}}        only with stream_options.include_usage
    data: [DONE]

An echo shorter (in characters) than its tokens leaves some pieces empty: those send nothing but
still take their delay, so the stream lasts as long as its tokens say; the first and the last
pieces always carry text.
"""

from __future__ import annotations

import itertools
from typing import Any

from llm_api_client.simulator.responses import Answer, chat_chunk, chunk_choice, dumps, usage

HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
DONE = b"data: [DONE]\n\n"
ROLE = {"role": "assistant", "content": "", "refusal": None}  # the first delta of each choice


def split(content: str, pieces: int) -> list[str]:
    """``content`` in ``pieces`` consecutive slices, as even as can be, first and last non-empty.

    With fewer characters than pieces, each character gets a piece of its own, spread evenly
    (the empty pieces fall in between).
    """
    length = len(content)
    if length >= pieces:
        bounds = [i * length // pieces for i in range(pieces + 1)]
        return [content[start:end] for start, end in itertools.pairwise(bounds)]
    out = [""] * pieces
    for position, character in enumerate(content):
        out[position * (pieces - 1) // max(length - 1, 1)] = character
    return out


def events(answer: Answer, include_usage: bool) -> list[bytes]:
    """The stream's bytes, one item per output token (an item may be empty).

    Item 0 is sent at the time to first token, each next one a token delay later; the last also
    ends the stream.
    """
    # OpenAI sends "usage": null in every chunk when the last one carries the usage.
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    pieces = split(answer.content, answer.tokens)
    last = len(pieces) - 1
    out: list[bytes] = []
    for position, piece in enumerate(pieces):
        finish = answer.finish_reason if position == last else None
        chunks = _per_choice(answer, ROLE, None, extra) if position == 0 else b""
        if piece or finish:
            chunks += _per_choice(answer, {"content": piece}, finish, extra)
        out.append(chunks)
    out[-1] += _ending(answer, include_usage)
    return out


def _per_choice(
    answer: Answer, delta: dict[str, Any], finish: str | None, extra: dict[str, Any]
) -> bytes:
    """One chunk per choice, as OpenAI streams ``n`` > 1."""
    return b"".join(
        _sse(chat_chunk(answer, [chunk_choice(i, delta, finish)], **extra)) for i in range(answer.n)
    )


def _ending(answer: Answer, include_usage: bool) -> bytes:
    if not include_usage:
        return DONE
    totals = usage(answer.prompt_tokens, answer.completion_tokens)
    return _sse(chat_chunk(answer, [], usage=totals)) + DONE


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload).encode() + b"\n\n"
