"""Streamed answers read whole in the worker, timed token by token.

litellm answers ``stream=True`` with an iterator of chunks (``CustomStreamWrapper``), which can
be neither pickled back from a worker process nor stored as a result. ``read_stream`` consumes
it where the call was made and returns what a plain call returns, one ``ModelResponse`` (built
by litellm's ``stream_chunk_builder``, headers and usage included), with the stream's timing in
its ``_hidden_params["stream_timing"]``::

    started = clock()
    response = read_stream(litellm.completion(stream=True, ...), request, started, clock)
    timing = stream_timing(response)   # StreamTiming(first_token=0.31, last_token=1.92)

Times are seconds since the call started: ``first_token`` is the time to first token (the
first chunk carrying output: text, reasoning or a tool call; a role-only chunk is not output),
``last_token`` the arrival of the last such chunk. A function that answers a streamed request
with a whole response (a fake) is passed through, untimed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_api_client import _offline, errors

__all__ = ["StreamTiming", "read_stream", "stream_timing"]

litellm = _offline.litellm()

TIMING_KEY = "stream_timing"
# Delta fields that carry output; a chunk with only a role (or only usage) carries none.
_OUTPUT_FIELDS = ("content", "reasoning_content", "tool_calls", "function_call")


@dataclass(frozen=True, slots=True)
class StreamTiming:
    """When a streamed answer's first and last output arrived, in seconds since the call."""

    first_token: float
    last_token: float

    def per_token(self, output_tokens: int) -> float | None:
        """Seconds per output token after the first; ``None`` when there is no second token."""
        if output_tokens < 2 or not self.last_token > self.first_token:
            return None
        return (self.last_token - self.first_token) / (output_tokens - 1)


def read_stream(
    answer: Any, request: Mapping[str, Any], started: float, clock: Callable[[], float]
) -> Any:
    """The complete ``ModelResponse`` of a streamed ``answer``, timed (see the module doc)."""
    if isinstance(answer, litellm.ModelResponse) or not isinstance(answer, Iterable):
        return answer
    chunks: list[Any] = []
    first = last = None
    for chunk in answer:
        chunks.append(chunk)
        if _carries_output(chunk):
            last = clock() - started
            first = last if first is None else first
    response = litellm.stream_chunk_builder(chunks, messages=request.get("messages"))
    if response is None:  # the connection closed before the first chunk
        raise errors.APIConnectionError("the provider's stream ended without a chunk")
    if first is not None and last is not None:
        response._hidden_params[TIMING_KEY] = StreamTiming(first, last)
    return response


def _carries_output(chunk: Any) -> bool:
    for choice in getattr(chunk, "choices", None) or ():
        delta = getattr(choice, "delta", None)
        if any(getattr(delta, name, None) for name in _OUTPUT_FIELDS):
            return True
    return False


def stream_timing(response: Any) -> StreamTiming | None:
    """The timing ``read_stream`` attached to ``response``; ``None`` for an unstreamed one."""
    hidden = getattr(response, "_hidden_params", None)
    found = hidden.get(TIMING_KEY) if isinstance(hidden, dict) else None
    return found if isinstance(found, StreamTiming) else None
