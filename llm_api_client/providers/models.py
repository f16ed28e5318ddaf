"""What we know about providers and models: litellm's model map and provider configs, asked once.

Every answer depends only on the model name (and the provider a request names with
``custom_llm_provider``), so each is cached: a batch of a million requests to one model asks
litellm once. The rest of the library asks here, never litellm:

- ``provider_of(model, request)``: the provider a request goes to (``openai``, ``anthropic``,
  ...), resolved once per request in the coordinator and carried to the worker;
- ``supported_openai_params``, ``known_without_reasoning``, ``rejected_by_openai_reasoning``,
  ``openai_chat_params``: what the sanitizer checks a request's parameters against;
- ``context_limits``: a model's window, for truncation;
- ``max_output_tokens``: the output a request may be charged for, for the rate limiter.

Example::

    provider_of("claude-sonnet-4-20250514")                  # "anthropic"
    context_limits("gpt-4o-mini").max_input_tokens          # 128000
    max_output_tokens({"max_tokens": 100, "n": 2})          # 200
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_api_client import _offline
from llm_api_client._constants import DEFAULT_MAX_OUTPUT_TOKENS

__all__ = [
    "ContextLimits",
    "context_limits",
    "known_without_reasoning",
    "max_output_tokens",
    "openai_chat_params",
    "output_tokens_per_choice",
    "provider_of",
    "rejected_by_openai_reasoning",
    "resolve",
    "supported_openai_params",
]

# Providers whose input and output limits are independent (Gemini documents inputTokenLimit and
# outputTokenLimit separately). Everywhere else the prompt and the answer share one window.
_SEPARATE_OUTPUT_PROVIDERS = frozenset({"gemini", "vertex_ai", "vertex_ai_beta"})

# Sampling parameters OpenAI answers 400 for on its o-series reasoning models
# (platform.openai.com/docs/guides/reasoning). litellm's list for them already lacks top_p,
# the penalties and logprobs, but keeps temperature (it only refuses values other than 1)
# and logit_bias; 1 is temperature's default, so dropping it never changes an answer.
_O_SERIES_REJECTED = frozenset(
    {
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "logit_bias",
    }
)
_O_SERIES_PROVIDERS = frozenset({"openai", "azure"})


@functools.lru_cache(maxsize=4096)
def resolve(model: str, custom_llm_provider: str | None = None) -> tuple[str, str] | None:
    """``(bare model, provider)`` as litellm routes ``model``; ``None`` when it cannot.

    ``resolve("openai/gpt-4o-mini") == ("gpt-4o-mini", "openai")``.
    """
    try:
        bare, provider, _, _ = _offline.litellm().get_llm_provider(
            model=model, custom_llm_provider=custom_llm_provider
        )
    except Exception:  # litellm raises its BadRequestError (and others) for unknown models
        return None
    return str(bare), str(provider)


def provider_of(model: str, request: Mapping[str, Any] | None = None) -> str | None:
    """The provider ``model`` goes to: litellm's routing, else the one the request names.

    A model litellm cannot route gives its ``custom_llm_provider``, else its prefix
    (``sim/model`` -> ``sim``), else ``None``.
    """
    named = _named_provider(request)
    found = resolve(model, named)
    if found is not None:
        return found[1]
    if named:
        return named
    return model.split("/", 1)[0] if "/" in model else None


def _named_provider(request: Mapping[str, Any] | None) -> str | None:
    named = request.get("custom_llm_provider") if request is not None else None
    return named if isinstance(named, str) and named else None


@functools.cache
def openai_chat_params() -> frozenset[str]:
    """Every parameter of OpenAI's chat API, as litellm lists them."""
    return frozenset(_offline.litellm().OPENAI_CHAT_COMPLETION_PARAMS)


@functools.lru_cache(maxsize=4096)
def supported_openai_params(
    model: str, custom_llm_provider: str | None = None
) -> frozenset[str] | None:
    """The OpenAI chat parameters ``model`` accepts; ``None`` when litellm does not know.

    litellm is asked with the bare model and its provider: asked with a prefixed name
    (``openai/gpt-4o-mini``) it returns a different, wrong list.
    """
    found = resolve(model, custom_llm_provider)
    if found is None:
        return None
    bare, provider = found
    try:
        supported = _offline.litellm().get_supported_openai_params(
            model=bare, custom_llm_provider=provider
        )
    except Exception:  # litellm raises a bare Exception for some unknown models
        return None
    return None if supported is None else frozenset(supported)


@functools.lru_cache(maxsize=4096)
def rejected_by_openai_reasoning(
    model: str, custom_llm_provider: str | None = None
) -> frozenset[str]:
    """Parameters OpenAI refuses for ``model`` because it is an o-series reasoning model.

    Empty for every other model: ``rejected_by_openai_reasoning("openai/o3-mini")`` holds
    ``temperature``, ``rejected_by_openai_reasoning("gpt-4o-mini")`` is empty.
    """
    found = resolve(model, custom_llm_provider)
    if found is None or found[1] not in _O_SERIES_PROVIDERS:
        return frozenset()
    bare = found[0]
    o_series = len(bare) > 1 and bare[0] == "o" and bare[1].isdigit()
    return _O_SERIES_REJECTED if o_series else frozenset()


@functools.lru_cache(maxsize=4096)
def known_without_reasoning(model: str, custom_llm_provider: str | None = None) -> bool:
    """True only when litellm's model map has ``model`` and says it does not reason."""
    found = resolve(model, custom_llm_provider)
    if found is None:
        return False
    bare, provider = found
    litellm = _offline.litellm()
    try:
        litellm.get_model_info(model=bare, custom_llm_provider=provider)
        return not litellm.supports_reasoning(model=bare, custom_llm_provider=provider)
    except Exception:  # not in the model map: unknown, so keep what the user asked for
        return False


@dataclass(frozen=True)
class ContextLimits:
    """A model's window. ``shared``: the prompt and the output must fit in it together."""

    max_input_tokens: int
    max_output_tokens: int | None
    shared: bool


@functools.lru_cache(maxsize=4096)
def context_limits(model: str, custom_llm_provider: str | None = None) -> ContextLimits | None:
    """``model``'s window per litellm's model map; ``None`` when the map does not say."""
    info = _model_info(model, custom_llm_provider)
    max_input = info.get("max_input_tokens") or info.get("max_tokens")
    if not (isinstance(max_input, int) and max_input > 0):
        return None
    max_output = info.get("max_output_tokens")
    output = max_output if isinstance(max_output, int) and max_output > 0 else None
    shared = info.get("litellm_provider") not in _SEPARATE_OUTPUT_PROVIDERS
    return ContextLimits(max_input, output, shared)


def _model_info(model: str, custom_llm_provider: str | None) -> Mapping[str, Any]:
    try:
        info = _offline.litellm().get_model_info(
            model=model, custom_llm_provider=custom_llm_provider
        )
    except Exception:  # litellm raises a bare Exception (ModelNotMappedError) when unknown
        return {}
    return info if isinstance(info, Mapping) else {}


def output_tokens_per_choice(request: Mapping[str, Any]) -> int:
    """The most output tokens one choice of ``request`` may have.

    ``max_completion_tokens`` wins over ``max_tokens``; with neither, ``DEFAULT_MAX_OUTPUT_TOKENS``.
    This is what a context window must leave room for: each of ``n`` choices is generated
    after the same prompt, in a window of its own.
    """
    limit = request.get("max_completion_tokens")
    if limit is None:
        limit = request.get("max_tokens")
    return DEFAULT_MAX_OUTPUT_TOKENS if limit is None else int(limit)


def max_output_tokens(request: Mapping[str, Any]) -> int:
    """Output tokens a provider may charge ``request`` at admission: every one of its ``n`` choices.

    What the rate limiter reserves besides the prompt (OpenAI counts it this way).
    """
    choices = request.get("n")
    return output_tokens_per_choice(request) * (int(choices) if choices else 1)
