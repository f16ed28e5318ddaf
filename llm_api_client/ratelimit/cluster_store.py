"""``ClusterStore``: one quota for every actor of a Ray cluster, held by one named Ray actor.

The actor holds a ``memory.LocalStore`` (so the arithmetic is ``bucket``'s, its time the
actor's clock) and runs one operation at a time. ``ClusterStore`` is the ``QuotaStore`` that
forwards each operation to it: one Ray call, one round trip, per operation. It pickles as the
actor's handle, so every Ray actor that receives it shares the same quota with nothing else
installed. Each admission costs one round trip to that actor (``reserve``), plus one for what a
provider's answer teaches (``learn``, only until slow start ends or while the provider states
limits) and one for a settlement refund (``give_back``); 2-3 ms each on one busy 2-core host
(``benchmarks/ray_backend.py``; see ``docs/ray.rst``). A Redis store (issue 15) serves
several clusters.

The process that creates the store owns the actor: its ``close()`` kills it; ``close()`` on a
copy that travelled to another actor does nothing. The actor is job-scoped: it dies with the
driver that created it.

Example::

    store = ClusterStore.create(Limits(requests_per_minute=3_000), probe_seconds=10)
    limiter = QuotaLimiter(store)  # in any actor or task that received ``store``
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import ray

from llm_api_client._constants import DEFAULT_PROBE_SECONDS
from llm_api_client.ratelimit.base import Cost, LimiterSnapshot, Limits, ProviderLimits, Turn
from llm_api_client.ratelimit.limiter import QuotaLimiter
from llm_api_client.ratelimit.memory import LocalStore

__all__ = ["ClusterStore", "cluster_limiter"]

SCHEME = "ray://"


class _QuotaActor:
    """Holds the quota; an operation that raises sends its exception back as a value.

    (Raised in an actor, it would reach the caller as a ``RayTaskError`` subclass made at
    run time, whose type name would then stand in the usage records instead of ours.)
    """

    def __init__(self, limits: Limits, probe_seconds: float) -> None:
        self._store = LocalStore(limits, probe_seconds=probe_seconds)

    def limits(self) -> Limits:
        return self._store.limits

    def call(self, operation: str, *args: Any) -> tuple[bool, Any]:
        try:
            return False, getattr(self._store, operation)(*args)
        except Exception as exc:
            return True, exc


class ClusterStore:
    """A ``QuotaStore`` whose state lives in a Ray actor; create it with ``create``."""

    def __init__(self, actor: Any, limits: Limits, *, owner: bool = False) -> None:
        self._actor = actor
        self.limits = limits
        self._owner = owner
        self.name: str | None = None

    @classmethod
    def create(
        cls, limits: Limits, *, probe_seconds: float = 0.0, name: str | None = None
    ) -> ClusterStore:
        """Start the quota's actor (named ``name``, or a unique name) in the connected cluster."""
        name = name or f"llm-api-client-quota-{uuid.uuid4().hex[:12]}"
        actor_class = ray.remote(_QuotaActor).options(
            name=name, num_cpus=0, max_restarts=0, max_task_retries=0, max_concurrency=1
        )
        store = cls(actor_class.remote(limits, probe_seconds), limits, owner=True)
        store.name = name
        return store

    @classmethod
    def attach(cls, name: str) -> ClusterStore:
        """The store whose actor is named ``name`` (made by ``create`` in this Ray namespace)."""
        actor = ray.get_actor(name)
        store = cls(actor, cast(Limits, ray.get(actor.limits.remote())))
        store.name = name
        return store

    def _call(self, operation: str, *args: Any) -> Any:
        failed, value = ray.get(self._actor.call.remote(operation, *args))
        if failed:
            raise value
        return value

    def reserve(self, cost: Cost, max_delay: float | None) -> Turn:
        return self._call("reserve", cost, max_delay)

    def claim_turn(self, shift: float) -> float:
        return float(self._call("claim_turn", shift))

    def cancel_turn(self, cost: Cost) -> None:
        self._call("cancel_turn", cost)

    def give_back(self, cost: Cost) -> None:
        self._call("give_back", cost)

    def pause(self, seconds: float, episode: int | None) -> None:
        self._call("pause", seconds, episode)

    def learn(self, limits: ProviderLimits) -> None:
        self._call("learn", limits)

    def snapshot(self) -> LimiterSnapshot:
        return self._call("snapshot")

    def close(self) -> None:
        """In the creating process, stop the actor (idempotent); elsewhere nothing."""
        if self._owner:
            self._owner = False
            ray.kill(self._actor, no_restart=True)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_owner": False}  # a copy never owns the actor

    def __repr__(self) -> str:
        return f"ClusterStore(name={self.name!r}, {self.limits})"


def cluster_limiter(url: str, limits: Limits) -> QuotaLimiter:
    """The runtime's store ``"ray"`` (a new store, owned) or ``"ray://<name>"`` (that one)."""
    from llm_api_client.engine import cancellation
    from llm_api_client.engine.ray_backend import connect

    connect()
    if url.startswith(SCHEME):
        store = ClusterStore.attach(url[len(SCHEME) :])
    else:
        store = ClusterStore.create(limits, probe_seconds=DEFAULT_PROBE_SECONDS)
    # cancellation.sleep: on threads of this process, a waiting request is not sent once the
    # batch is abandoned (Ray actors are killed instead).
    return QuotaLimiter(store, sleep=cancellation.sleep)
