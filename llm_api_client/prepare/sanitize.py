"""Drop the OpenAI parameters a model does not accept, keep everything else.

litellm raises ``UnsupportedParamsError`` before sending when a request carries an OpenAI
parameter the model's provider config does not list (``reasoning_effort`` on gpt-4o-mini,
``logit_bias`` on Mistral, ...). ``sanitize_request`` removes exactly those, so the request is
sent instead of failing, and logs each (model, parameter) once.

What is kept:

- routing, credential and transport parameters (``api_base``, ``base_url``, ``api_key``,
  ``api_version``, ``timeout``, ``extra_headers``, ``extra_body``, ``metadata``,
  ``custom_llm_provider``, ``organization``, ``mock_response``, ...): they configure litellm, not
  the model, and dropping them sends a request to the wrong place or lets it hang;
- every parameter that is not an OpenAI chat parameter at all (not in
  ``litellm.OPENAI_CHAT_COMPLETION_PARAMS``): provider-specific ones (``top_k``,
  ``safety_settings``, ...) are litellm's to pass through;
- every parameter when litellm does not know the provider (nothing to check against).

The supported set is litellm's, asked through ``providers.models.supported_openai_params``
(with the bare model and its provider: asked with the prefixed name, ``openai/gpt-4o-mini``,
litellm returns a different, wrong list that includes ``reasoning_effort`` and omits
``user``). ``reasoning_effort`` is also dropped for a model litellm knows to lack reasoning
(``providers.models.known_without_reasoning``), whatever the list says; ``temperature``,
``logit_bias`` and the other sampling parameters OpenAI refuses for its o-series reasoning
models are dropped for them (``providers.models.rejected_by_openai_reasoning``), though
litellm's list keeps some. The answer is cached
per (model, provider): a call costs a dict lookup and a set test.

Example::

    >>> sanitize_request({"model": "gpt-4o-mini", "messages": [], "reasoning_effort": "low"})
    {'model': 'gpt-4o-mini', 'messages': []}
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from typing import Any

from llm_api_client._redact import redact_text
from llm_api_client.providers import models

__all__ = ["ROUTING_PARAMS", "sanitize_request", "unsupported_params"]

logger = logging.getLogger("llm_api_client")

# OpenAI-named parameters that configure litellm's HTTP call rather than the model: never dropped.
ROUTING_PARAMS = frozenset(
    {
        "model",
        "messages",
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "organization",
        "deployment_id",
        "timeout",
        "request_timeout",
        "max_retries",
        "extra_headers",
        "default_headers",
        "headers",
        "extra_body",
        "metadata",
        "custom_llm_provider",
        "mock_response",
        "stream",
    }
)

# Reasoning knobs, dropped for a model litellm knows does not reason.
_REASONING_PARAMS = frozenset({"reasoning_effort"})


@functools.cache
def _openai_chat_params() -> frozenset[str]:
    return models.openai_chat_params() - ROUTING_PARAMS


@functools.lru_cache(maxsize=4096)
def unsupported_params(model: str, custom_llm_provider: str | None = None) -> frozenset[str]:
    """OpenAI chat parameters ``model`` (through ``custom_llm_provider``) does not accept.

    Empty when litellm cannot resolve the provider: we then have nothing to check against.
    """
    supported = models.supported_openai_params(model, custom_llm_provider)
    if supported is None:
        return frozenset()
    dropped = _openai_chat_params() - supported
    if models.known_without_reasoning(model, custom_llm_provider):
        dropped |= _REASONING_PARAMS
    return dropped | models.rejected_by_openai_reasoning(model, custom_llm_provider)


_logged: set[tuple[str, str]] = set()
_logged_lock = threading.Lock()


def sanitize_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A new request dict without the OpenAI parameters the model does not support.

    The caller's mapping (and anything nested in it) is never modified; nested values are
    shared, not copied. ``model`` must be a string (``prepare_request`` validates it first).
    """
    provider = request.get("custom_llm_provider")
    dropped = unsupported_params(request["model"], provider if isinstance(provider, str) else None)
    if dropped.isdisjoint(request.keys()):
        return dict(request)
    out = {key: value for key, value in request.items() if key not in dropped}
    _log_dropped(request["model"], sorted(dropped.intersection(request.keys())))
    return out


def _log_dropped(model: str, params: list[str]) -> None:
    for param in params:
        key = (model, param)
        if key in _logged:
            continue
        with _logged_lock:
            if key in _logged:
                continue
            _logged.add(key)
        # Names only: a parameter's value could be a credential.
        logger.warning(
            "Dropping parameter %r: model %r does not support it (per litellm); "
            "logged once per model and parameter.",
            param,
            redact_text(model),
        )
