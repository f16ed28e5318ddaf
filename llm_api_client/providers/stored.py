"""Answers as text and back: how the response cache stores a litellm ``ModelResponse``.

    text = dump_response(response)         # None: not a chat completion, not stored
    again = load_response(text)            # a ModelResponse with equal content and usage

Only chat completions (``ModelResponse``) are stored; anything else (a stream wrapper, an
embedding, a user's fake) is answered from the provider every time.
"""

from __future__ import annotations

import json
from typing import Any

from llm_api_client import _offline

litellm = _offline.litellm()

__all__ = ["dump_response", "load_response"]


def dump_response(response: Any) -> str | None:
    """``response`` as JSON, or None when it is not a ``ModelResponse``."""
    if not isinstance(response, litellm.ModelResponse):
        return None
    return json.dumps(response.model_dump(), separators=(",", ":"), default=str)


def load_response(text: str) -> Any:
    """The ``ModelResponse`` ``dump_response`` wrote."""
    return litellm.ModelResponse(**json.loads(text))
