"""Per-model limits: each listed model has its own buckets, under the client-wide ones.

::

    run_item(item) ── limiter.for_model(item.model) ──▶ ModelLimiters
                                                          │ listed model, overall set:
                                                          │   BothLimiters(model's, overall)
                                                          │ listed model, overall unlimited:
                                                          │   the model's limiter
                                                          │ unlisted model: the overall limiter
                                                          ▼
                                                       one QuotaLimiter per store, as before

A provider states its limits per model (LiteLLM's Router has rpm/tpm per deployment), so a
request for a listed model is admitted by that model's buckets AND by the client-wide ones,
which act as an overall cap. What the provider's answer teaches (headers, 429s) is about that
model only: it goes to the model's buckets. The overall limiter only hears that an answer came,
which ends its slow start (nothing else would: its own answers are for unlisted models).

Example::

    limiters = ModelLimiters(overall, {"openai/gpt-a": gpt_a_limiter})
    limiter = limiters.for_model("openai/gpt-a")  # admits against both
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Mapping

from llm_api_client._settings import PER_MINUTE
from llm_api_client.errors import ConfigurationError
from llm_api_client.ratelimit.base import (
    Admission,
    Cost,
    LimiterSnapshot,
    Limits,
    ProviderLimits,
    RateLimiter,
)

__all__ = [
    "SETTINGS",
    "BothLimiters",
    "ModelLimiters",
    "combined_limits",
    "is_unlimited",
    "limiter_set",
    "limits_table",
    "store_for_model",
]

# A model's limits are named as the client-wide ones, in ``Limits`` order.
SETTINGS = (
    "max_requests_per_minute",
    "max_tokens_per_minute",
    "input_tokens_per_minute",
    "output_tokens_per_minute",
)

_NOTHING_LEARNED = ProviderLimits()


def is_unlimited(limits: Limits) -> bool:
    """Whether ``limits`` sets no per-minute limit at all (its limiter admits everything)."""
    return all(
        value is None
        for value in (
            limits.requests_per_minute,
            limits.tokens_per_minute,
            limits.input_tokens_per_minute,
            limits.output_tokens_per_minute,
        )
    )


class BothLimiters(RateLimiter):
    """A listed model's limiter, then the overall one: a request needs a turn in both.

    It waits for the model's turn first, then for the overall turn with what is left of
    ``max_delay``; if the overall one refuses, the model's turn is given back.
    """

    def __init__(self, model: RateLimiter, overall: RateLimiter) -> None:
        self.model = model
        self.overall = overall
        self.limits = model.limits

    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        return self.admit(cost, max_delay=max_delay).waited

    def admit(self, cost: Cost, *, max_delay: float | None = None) -> Admission:
        first = self.model.admit(cost, max_delay=max_delay)
        left = None if max_delay is None else max(0.0, max_delay - first.waited)
        try:
            second = self.overall.admit(cost, max_delay=left)
        except BaseException:
            self.model.refund(cost)
            raise
        # The episode is the model's: a 429 pauses the model's buckets (see ``pause``).
        return Admission(first.waited + second.waited, first.episode)

    def refund(self, cost: Cost) -> None:
        self.model.refund(cost)
        self.overall.refund(cost)

    def pause(self, seconds: float, admission: Admission | None = None) -> None:
        self.model.pause(seconds, admission)
        self.overall.observe(_NOTHING_LEARNED)

    def observe(self, limits: ProviderLimits) -> None:
        self.model.observe(limits)
        self.overall.observe(_NOTHING_LEARNED)

    def snapshot(self) -> LimiterSnapshot:
        return self.model.snapshot()

    def __repr__(self) -> str:
        return f"<BothLimiters model={self.model!r} overall={self.overall!r}>"


class ModelLimiters(RateLimiter):
    """The overall limiter and one limiter per listed model; ``for_model`` picks a request's.

    Used directly (``acquire``, ``snapshot``, ...) it is the overall limiter, as for an
    unlisted model. ``close`` and ``unlink`` reach every limiter it holds.
    """

    def __init__(self, overall: RateLimiter, models: Mapping[str, RateLimiter]) -> None:
        self.overall = overall
        self.models = dict(models)
        self.limits = overall.limits
        capped = not is_unlimited(overall.limits)
        self._by_model = {
            name: BothLimiters(limiter, overall) if capped else limiter
            for name, limiter in self.models.items()
        }

    def for_model(self, model: str | None) -> RateLimiter:
        return self._by_model.get(model or "", self.overall)

    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        return self.overall.acquire(cost, max_delay=max_delay)

    def admit(self, cost: Cost, *, max_delay: float | None = None) -> Admission:
        return self.overall.admit(cost, max_delay=max_delay)

    def refund(self, cost: Cost) -> None:
        self.overall.refund(cost)

    def pause(self, seconds: float, admission: Admission | None = None) -> None:
        self.overall.pause(seconds, admission)

    def observe(self, limits: ProviderLimits) -> None:
        self.overall.observe(limits)

    def snapshot(self) -> LimiterSnapshot:
        return self.overall.snapshot()

    def close(self) -> None:
        for limiter in (self.overall, *self.models.values()):
            limiter.close()

    def unlink(self) -> None:
        for limiter in (self.overall, *self.models.values()):
            limiter.unlink()

    def __repr__(self) -> str:
        return f"<ModelLimiters overall={self.overall!r} models={sorted(self.models)}>"


def limits_table(
    table: Mapping[str, Mapping[str, float | None]], burst_seconds: float
) -> dict[str, Limits]:
    """``APIClient(model_limits=...)`` as ``Limits`` by model, each value checked as client-wide.

    Raises ``ConfigurationError`` for a model name that is not a non-empty string, an unknown
    setting, or a value the client-wide setting of that name would refuse.
    """
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"model_limits must be a dict, not {type(table).__name__}")
    return {_model_name(model): _limits_of(model, settings, burst_seconds)
            for model, settings in table.items()}  # fmt: skip


def _model_name(model: object) -> str:
    if not isinstance(model, str) or not model:
        raise ConfigurationError(f"model_limits: a model must be a non-empty string, not {model!r}")
    return model


def _limits_of(model: str, settings: object, burst_seconds: float) -> Limits:
    if not isinstance(settings, Mapping):
        kind = type(settings).__name__
        raise ConfigurationError(f"model_limits[{model!r}] must be a dict of limits, not {kind}")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigurationError(f"model_limits[{model!r}]: unknown {unknown}; known: {SETTINGS}")
    for name, value in settings.items():
        problem = PER_MINUTE.problem(value)
        if problem is not None:
            raise ConfigurationError(f"model_limits[{model!r}][{name!r}] must be {problem}")
    requests, tokens, input_tokens, output_tokens = (settings.get(name) for name in SETTINGS)
    return Limits(requests, tokens, input_tokens, output_tokens, burst_seconds)


def store_for_model(store: str, model: str) -> str:
    """The store URL of a model's own quota beside the client-wide one at ``store``.

    A store named by a key (Redis: ``URL#KEY``) gets the key suffixed with the model, so every
    client naming the same key shares each model's quota too; the others are made anew.
    """
    if "#" in store:
        return store + urllib.parse.quote(f":{model}", safe="")
    if store.startswith("ray://"):
        raise ConfigurationError(f"model_limits need a new quota per model, not the one {store!r}")
    return store


def limiter_set(
    make: Callable[[Limits, str], RateLimiter],
    overall: Limits,
    models: Mapping[str, Limits],
) -> RateLimiter:
    """The overall limiter, or ``ModelLimiters`` over it when models are listed.

    ``make(limits, model)`` builds one limiter (``model`` is ``""`` for the overall one): a
    store keyed by name, such as Redis, keeps each model's quota apart with it.
    """
    if not models:
        return make(overall, "")
    return ModelLimiters(make(overall, ""), {name: make(lim, name) for name, lim in models.items()})


def combined_limits(overall: Limits, models: Mapping[str, Limits]) -> Limits:
    """The limits a whole batch runs at, for sizing its window and its processes.

    A limit set client-wide is the cap. One left unset is the sum over the listed models when
    each of them sets it (requests of unlisted models then run unlimited), else unset.
    """
    if not models:
        return overall
    requests = overall.requests_per_minute or _sum(m.requests_per_minute for m in models.values())
    tokens = overall.tokens_per_minute or _sum(m.tokens_per_minute for m in models.values())
    return Limits(
        requests,
        tokens,
        overall.input_tokens_per_minute,
        overall.output_tokens_per_minute,
        overall.burst_seconds,
    )


def _sum(values: Iterable[float | None]) -> float | None:
    listed = list(values)
    if any(value is None for value in listed):
        return None
    return float(sum(value for value in listed if value is not None))
