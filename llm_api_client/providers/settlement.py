"""Settlement: after an answer, does the provider keep what we charged at admission?

Provider policy, on the caller's side of the limiter (which only counts what it is told).
OpenAI (and Azure OpenAI) count a request's prompt plus its ``max_tokens`` against the token
limit when the request arrives and keep that charge; the limiter does the same and gives nothing
back. Anthropic counts output tokens as they are produced, so what a request did not generate is
free again: the limiter is refunded the unused part of the output it charged. The request worker
(``call``) does::

    if settles_on_actual_usage(model):
        limiter.refund(refund_for(cost, usage.prompt_tokens, usage.completion_tokens))
"""

from __future__ import annotations

import functools

from llm_api_client.errors import ConfigurationError
from llm_api_client.providers import models
from llm_api_client.ratelimit.base import Cost

__all__ = ["SETTLEMENTS", "refund_for", "settles_on_actual_usage"]

SETTLEMENTS = ("admission", "actual")
# Providers that settle output tokens on actual usage, and hosts that do so for Claude models.
_ACTUAL_USAGE_PROVIDERS = frozenset({"anthropic", "anthropic_text"})
_CLAUDE_HOSTS = frozenset({"bedrock", "vertex_ai", "vertex_ai_beta"})


def settles_on_actual_usage(
    model: str, custom_llm_provider: str | None = None, override: str | None = None
) -> bool:
    """True when ``model``'s provider charges output on actual usage (refund the unused part).

    ``override`` ("admission" or "actual") replaces the provider's default. Unknown models are
    charged at admission, the cautious choice (never refunds tokens a provider kept).
    """
    if override is not None:
        if override not in SETTLEMENTS:
            raise ConfigurationError(f"settlement must be one of {SETTLEMENTS}, got {override!r}")
        return override == "actual"
    return _provider_settles_on_actual(model, custom_llm_provider)


@functools.lru_cache(maxsize=1024)
def _provider_settles_on_actual(model: str, custom_llm_provider: str | None) -> bool:
    provider = _provider_of(model, custom_llm_provider)
    claude = "claude" in model.lower() or "anthropic" in model.lower()
    if provider is None:
        return claude and "/" not in model  # a bare Claude name the price map does not know
    return provider in _ACTUAL_USAGE_PROVIDERS or (provider in _CLAUDE_HOSTS and claude)


def _provider_of(model: str, custom_llm_provider: str | None) -> str | None:
    found = models.resolve(model, custom_llm_provider)
    return None if found is None else found[1]


def refund_for(charged: Cost, prompt_tokens: int, completion_tokens: int) -> Cost:
    """The part of ``charged`` a provider settling on actual usage did not use: unused output.

    ``prompt_tokens`` is accepted for symmetry with a usage record; input is charged in full
    either way, since the prompt was sent.
    """
    del prompt_tokens
    unused = max(0, charged.output_tokens - max(0, completion_tokens))
    return Cost(input_tokens=0, output_tokens=unused, requests=0)
