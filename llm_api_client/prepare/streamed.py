"""Streamed requests: ask the provider for the usage, which only the last chunk can carry.

Without ``stream_options={"include_usage": True}`` an OpenAI-compatible stream reports no
usage, and litellm's ``stream_chunk_builder`` counts the answer's tokens itself, from the text
(against the simulator: 4 tokens for an answer the provider billed as 10). So a streamed request
asks for it, unless it says otherwise or its model does not take ``stream_options`` (Anthropic's
streams always carry their usage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_api_client.providers import models

__all__ = ["with_stream_usage"]

_INCLUDE_USAGE = {"include_usage": True}


def with_stream_usage(request: Mapping[str, Any]) -> Mapping[str, Any]:
    """``request``, or a copy asking for usage in the last chunk when its model accepts it."""
    if "stream_options" in request:
        return request  # the caller's choice
    provider = request.get("custom_llm_provider")
    supported = models.supported_openai_params(
        request["model"], provider if isinstance(provider, str) else None
    )
    if supported is None or "stream_options" not in supported:
        return request
    return {**request, "stream_options": dict(_INCLUDE_USAGE)}
