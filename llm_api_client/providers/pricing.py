"""Prices from litellm's price map (``litellm.model_cost``), cached per model.

``litellm.completion_cost`` re-resolves the model and walks its provider logic on every call
(hundreds of microseconds); a batch of a million requests prices each one, so we resolve a model's
prices once and the per-request arithmetic costs about a microsecond.

    cost_of("openai/gpt-4o-mini", prompt_tokens=1000, completion_tokens=200)  # USD
    is_priced("my-local-model")  # False: its cost counts as 0.0

Priced: input, output and cached-input tokens (``cache_read_input_token_cost``, charged for the
cached part of the prompt), with the long-context tiers (``*_above_<N>k_tokens``) chosen by the
prompt's size. Not priced: batch/flex/priority service tiers, audio and image tokens, and a
separate reasoning-token price (reasoning tokens are billed as completion tokens).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

from llm_api_client import _offline
from llm_api_client.ratelimit.base import Cost

litellm = _offline.litellm()

__all__ = [
    "Prices",
    "clear_cache",
    "cost_of",
    "estimate_cost",
    "is_priced",
    "price_map",
    "prices_of",
    "set_price",
]

_TIER = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per token for one model; ``tiers`` apply when the prompt exceeds their threshold."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float = 0.0
    tiers: tuple[tuple[int, float, float, float], ...] = ()  # (threshold, in, out, cached), desc
    priced: bool = True

    def for_prompt(self, prompt_tokens: int) -> tuple[float, float, float]:
        for threshold, input_price, output_price, cached_price in self.tiers:
            if prompt_tokens > threshold:
                return input_price, output_price, cached_price
        return self.input, self.output, self.cached_input


UNPRICED = Prices(priced=False)

_cache: dict[tuple[str, str | None], Prices] = {}
_lock = threading.Lock()
# Prices the user gave (``run --price``), by model name; they win over litellm's map.
_given: dict[str, Prices] = {}


def prices_of(model: str, custom_llm_provider: str | None = None) -> Prices:
    """The model's prices (``UNPRICED`` if litellm's map does not know it); cached."""
    key = (model, custom_llm_provider)
    prices = _cache.get(key)
    if prices is None:
        prices = _resolve(model, custom_llm_provider)
        with _lock:
            _cache[key] = prices
    return prices


def clear_cache() -> None:
    """Forget resolved prices (after ``litellm.register_model`` changed the map)."""
    with _lock:
        _cache.clear()


def set_price(model: str, input_per_token: float, output_per_token: float) -> None:
    """Price ``model`` in USD per token where litellm's map does not (or overrule it).

    Set before a client starts its worker processes: they are forked with it.
    """
    with _lock:
        _given[model] = Prices(input_per_token, output_per_token, input_per_token)
        _cache.clear()


def is_priced(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether litellm's price map has input or output prices for ``model``."""
    return prices_of(model, custom_llm_provider).priced


def cost_of(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    custom_llm_provider: str | None = None,
) -> float:
    """USD for one call's usage; 0.0 for a model litellm does not price (see ``is_priced``).

    ``cached_tokens`` are the part of ``prompt_tokens`` read from the provider's prompt cache.
    """
    prices = prices_of(model, custom_llm_provider)
    input_price, output_price, cached_price = prices.for_prompt(prompt_tokens)
    cached = min(max(cached_tokens, 0), prompt_tokens)
    return (
        (prompt_tokens - cached) * input_price
        + cached * cached_price
        + completion_tokens * output_price
    )


def estimate_cost(model: str, cost: Cost, custom_llm_provider: str | None = None) -> float:
    """Projected USD of a request's admission cost (prompt + maximum output), for a spend cap."""
    return cost_of(model, cost.input_tokens, cost.output_tokens, 0, custom_llm_provider)


def price_map() -> dict[str, str | None]:
    """Which price map litellm loaded: ``{"source": "current" | "bundled", "reason": ...}``.

    ``current``: fetched at import (litellm's default); ``bundled``: the copy the installed
    litellm ships, because the user asked (``LLM_API_CLIENT_LOCAL_PRICES=1`` or
    ``LITELLM_LOCAL_MODEL_COST_MAP=True``) or the current one could not be had.
    """
    info = _litellm_source_info()
    if _offline.bundled_because is not None:
        return {"source": "bundled", "reason": _offline.bundled_because}
    if info.get("source") == "remote":
        return {"source": "current", "reason": None}
    fallback = info.get("fallback_reason")
    if fallback is None or info.get("is_env_forced"):
        return {"source": "bundled", "reason": _asked_for_bundled()}
    return {"source": "bundled", "reason": str(fallback)}


def _litellm_source_info() -> dict[str, object]:
    try:
        from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info
    except ImportError:  # an older litellm: only the environment tells
        return {"source": "local" if os.environ.get(_offline.LITELLM_LOCAL) else "remote"}
    return dict(get_model_cost_map_source_info())


def _asked_for_bundled() -> str:
    if os.environ.get(_offline.LOCAL_PRICES):
        return f"{_offline.LOCAL_PRICES} is set"
    return f"{_offline.LITELLM_LOCAL} is set"


def _candidates(model: str, provider: str | None) -> list[str]:
    names = [model]
    if provider and not model.startswith(f"{provider}/"):
        names.append(f"{provider}/{model}")
    if "/" in model:
        names.append(model.split("/", 1)[1])  # "openai/gpt-4o-mini" -> "gpt-4o-mini"
    return names


def _resolve(model: str, provider: str | None) -> Prices:
    table = litellm.model_cost
    for name in _candidates(model, provider):
        if name in _given:
            return _given[name]
        entry = table.get(name)
        if isinstance(entry, dict) and _has_token_prices(entry):
            return _prices(entry)
    return UNPRICED


def _has_token_prices(entry: dict[str, object]) -> bool:
    return "input_cost_per_token" in entry or "output_cost_per_token" in entry


def _price(entry: dict[str, object], key: str, default: float = 0.0) -> float:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) else default


def _prices(entry: dict[str, object]) -> Prices:
    input_price = _price(entry, "input_cost_per_token")
    output_price = _price(entry, "output_cost_per_token")
    cached_price = _price(entry, "cache_read_input_token_cost", input_price)
    tiers = []
    for key in entry:
        match = _TIER.match(key)
        if match is None:
            continue
        size = match.group(1)
        tiers.append(
            (
                int(size) * 1000,
                _price(entry, key, input_price),
                _price(entry, f"output_cost_per_token_above_{size}k_tokens", output_price),
                _price(entry, f"cache_read_input_token_cost_above_{size}k_tokens", cached_price),
            )
        )
    tiers.sort(reverse=True)
    return Prices(input_price, output_price, cached_price, tuple(tiers))
