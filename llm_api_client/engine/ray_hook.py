"""Where a client's batches run: ``backend="auto"`` (threads or processes) or ``"ray"`` (actors).

Kept apart from ``client`` so that Ray is imported only by a client that asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_api_client.errors import ConfigurationError
from llm_api_client.ratelimit.base import Limits
from llm_api_client.ratelimit.limiter import QuotaLimiter

if TYPE_CHECKING:
    from llm_api_client.engine.execution import ExecutionConfig
    from llm_api_client.engine.ray_backend import RayBackend
    from llm_api_client.ratelimit.store import QuotaStore

BACKENDS = ("auto", "ray")


@dataclass(frozen=True)
class Placement:
    """The client's choice of backend, Ray actor options, and quota store (None: its own)."""

    backend: str = "auto"
    actor_options: Mapping[str, Any] = field(default_factory=dict)
    store: QuotaStore | None = None

    @classmethod
    def of(
        cls, backend: str, actor_options: Mapping[str, Any] | None, store: QuotaStore | None
    ) -> Placement:
        if backend not in BACKENDS:
            raise ConfigurationError(f"backend must be one of {BACKENDS}, not {backend!r}")
        if actor_options and backend != "ray":
            raise ConfigurationError('ray_actor_options needs backend="ray"')
        return cls(backend, dict(actor_options or {}), store)

    @property
    def on_ray(self) -> bool:
        return self.backend == "ray"


def start_ray_backend(
    placement: Placement,
    limits: Limits,
    config: ExecutionConfig,
    processes: int,
    threads: int,
) -> RayBackend:
    """``processes`` actors (at least one) sharing the given store, else a new cluster store."""
    from llm_api_client._constants import DEFAULT_PROBE_SECONDS
    from llm_api_client.engine.ray_backend import RayBackend, connect
    from llm_api_client.ratelimit.cluster_store import ClusterStore

    connect()
    store = placement.store
    own = store is None
    if store is None:
        store = ClusterStore.create(limits, probe_seconds=DEFAULT_PROBE_SECONDS)
    options = placement.actor_options
    backend = RayBackend(store, config, max(1, processes), threads, actor_options=options)
    backend.owns_store = own
    return backend


class BorrowedLimiter(QuotaLimiter):
    """A limiter over a store the caller gave: closing the client leaves the store open."""

    def close(self) -> None:
        """The store belongs to whoever created it."""
