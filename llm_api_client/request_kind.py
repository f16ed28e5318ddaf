"""What a request dict asks for: a chat completion or embeddings, streamed or not.

Read by every layer that treats the kinds apart (validation and counting, the transports, the
batch files), so the rule lives once: a request with ``input`` and no ``messages`` is an
embedding request (``litellm.embedding``); anything else is a chat completion, streamed when it
says ``stream=True``.

    is_embedding({"model": "text-embedding-3-small", "input": ["a", "b"]})   # True
    is_streamed({"model": "gpt-4o-mini", "messages": [...], "stream": True})  # True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CHAT_URL", "EMBEDDINGS_URL", "endpoint_url", "is_embedding", "is_streamed"]

# OpenAI's paths for the two kinds (a Batch API line's ``url``).
CHAT_URL = "/v1/chat/completions"
EMBEDDINGS_URL = "/v1/embeddings"


def is_embedding(request: object) -> bool:
    """Whether ``request`` asks for embeddings: it has ``input`` and no ``messages``."""
    return isinstance(request, Mapping) and "input" in request and "messages" not in request


def is_streamed(request: Mapping[str, Any]) -> bool:
    """Whether ``request`` asks for its answer as a stream of chunks (``stream=True``)."""
    return request.get("stream") is True


def endpoint_url(request: object) -> str:
    """The OpenAI path ``request`` goes to: ``/v1/embeddings`` or ``/v1/chat/completions``."""
    return EMBEDDINGS_URL if is_embedding(request) else CHAT_URL
