"""The runtime: one choice decides where a batch runs AND where its rate limiter keeps the quota.

::

    client settings (processes, max_workers, limits) + the batch's size
            │ Runtime.plan(): processes = the setting, else sizing.default_processes
            ▼
    Plan(backend="threads" | "processes", processes, threads per process)
            │ BACKENDS[plan.backend]: how to start it, and the store its limiter needs
            ▼
    "threads"   → ThreadBackend   over a limiter on a LocalStore         (kept for the client)
    "processes" → ProcessBackend  over a limiter on a SharedMemoryStore  (owned by the backend)

The runtime owns what it starts: it reuses a backend across batches while the plan's shape is
the same, closes it when the shape changes, when a batch leaves it unusable (abandoned) or on
``close()``, and forgets it in a forked child (the parent's workers are the parent's).

New kinds plug in as modules that register themselves; nothing here changes:

- a **store** by name or URL scheme: ``STORES["redis"] = make_redis_limiter`` makes
  ``limiter_for("redis://host:6379/0", limits)`` work; a factory takes ``(url, limits)`` and
  returns a ``RateLimiter`` (``ratelimit.QuotaLimiter`` over the new ``QuotaStore``).
- a **backend** by name: ``BACKENDS["ray"] = BackendKind(start_ray, store="redis")`` makes
  ``Runtime(..., backend="ray")`` start it; ``start(runtime, plan, limiter)`` returns a
  ``Backend`` (``engine.backend``) and owns ``limiter`` unless ``BackendKind.shared`` says
  the runtime keeps it for the next backends.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_api_client._constants import DEFAULT_PROBE_SECONDS, MAX_THREADS_PER_PROCESS
from llm_api_client.engine import cancellation
from llm_api_client.engine.backend import Backend
from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.keyguard import KeyGuard
from llm_api_client.engine.sizing import (
    FixedWindow,
    LatencyWindow,
    Window,
    calls_per_second_per_process,
    default_processes,
    split_threads,
)
from llm_api_client.engine.start_method import choose_start_method
from llm_api_client.errors import ConfigurationError
from llm_api_client.ratelimit import per_model, selection
from llm_api_client.ratelimit.base import Limits, RateLimiter
from llm_api_client.records import UsageRecord

__all__ = ["BACKENDS", "STORES", "BackendKind", "Plan", "Runtime", "limiter_for"]


@dataclass(frozen=True)
class Plan:
    """Where one batch runs: a backend's name, its worker processes and threads per process."""

    backend: str
    processes: int
    threads: int


# -- stores: a factory per name or URL scheme ------------------------------------------------
StoreFactory = Callable[[str, Limits], RateLimiter]


def _local_limiter(url: str, limits: Limits) -> RateLimiter:
    from llm_api_client.ratelimit.memory import InProcessRateLimiter

    # cancellation.sleep: a request waiting for its turn is not sent once abandoned.
    return InProcessRateLimiter(
        limits, probe_seconds=DEFAULT_PROBE_SECONDS, sleep=cancellation.sleep
    )


def _shared_memory_limiter(url: str, limits: Limits) -> RateLimiter:
    """``shared-memory://spawn``: locks the workers of that start method can take (default fork)."""
    import multiprocess

    from llm_api_client.ratelimit.shared import SharedMemoryRateLimiter

    context = multiprocess.get_context(url.partition("://")[2] or "fork")
    return SharedMemoryRateLimiter(limits, probe_seconds=DEFAULT_PROBE_SECONDS, context=context)


STORES: dict[str, StoreFactory] = {"local": _local_limiter, "shared-memory": _shared_memory_limiter}
STORES.update(dict.fromkeys(selection.SCHEMES, selection.redis_limiter))  # docs/redis


def limiter_for(url: str, limits: Limits) -> RateLimiter:
    """A limiter over the store ``url`` names: ``"local"``, ``"shared-memory"`` or ``scheme://...``."""
    scheme = url.split("://", 1)[0]
    if scheme not in STORES:
        raise ConfigurationError(f"no rate-limit store {scheme!r}; known: {sorted(STORES)}")
    return STORES[scheme](url, limits)


# -- backends: a starter per name, with the store its limiter needs ---------------------------
@dataclass(frozen=True)
class BackendKind:
    """How to start a backend, and which store its limiter uses.

    ``shared``: the runtime keeps the limiter for every backend of this kind it starts (one
    quota across a client's batches); otherwise each backend gets a new one and owns it.
    """

    start: Callable[[Runtime, Plan, RateLimiter], Backend]
    store: str
    shared: bool = False


def _start_threads(runtime: Runtime, plan: Plan, limiter: RateLimiter) -> Backend:
    from llm_api_client.engine.threads import ThreadBackend

    return ThreadBackend(limiter, runtime.execution, plan.threads, late_usage=runtime.late_usage)


def _start_processes(runtime: Runtime, plan: Plan, limiter: RateLimiter) -> Backend:
    from llm_api_client.engine.processes import ProcessBackend

    # Forked workers inherit a shared-memory limiter's mapping; a Redis one connects again.
    return ProcessBackend(limiter, runtime.execution, plan.processes, plan.threads,
                          start_method=runtime.start_method)  # fmt: skip


def _start_ray(runtime: Runtime, plan: Plan, limiter: RateLimiter) -> Backend:
    from llm_api_client.engine.ray_backend import start_ray

    return start_ray(runtime, plan, limiter)


def _ray_cluster_limiter(url: str, limits: Limits) -> RateLimiter:
    from llm_api_client.ratelimit.cluster_store import cluster_limiter

    return cluster_limiter(url, limits)


STORES["ray"] = _ray_cluster_limiter  # "ray": a new ClusterStore; "ray://<name>": that one

BACKENDS: dict[str, BackendKind] = {
    "threads": BackendKind(_start_threads, store="local", shared=True),
    "processes": BackendKind(_start_processes, store="shared-memory"),
    "ray": BackendKind(_start_ray, store="ray"),  # issue 16: Ray actors, a ClusterStore
}


class Runtime:
    """A client's backend and limiter: chosen together from one plan, started, reused, closed.

    ``processes`` (None: by the limit and the batch size) and ``max_workers`` (None: follow the
    latency) are the client's settings; ``backend`` names a ``BACKENDS`` entry instead of the
    choice by ``processes``. ``store`` (a ``STORES`` URL, e.g. Redis) holds every backend's
    quota instead of the backend kind's own store. ``model_limits``: a model's own limits by
    setting name (``ratelimit.per_model``), under ``limits``, which then cap the whole client.
    ``late_usage`` receives the usage of calls that finish after their batch was abandoned (the
    tracker's ``add_calls``: never the client, which would keep it alive).
    """

    def __init__(
        self,
        limits: Limits,
        execution: ExecutionConfig,
        *,
        processes: int | None = None,
        max_workers: int | None = None,
        backend: str | None = None,
        late_usage: Callable[[UsageRecord], None] = lambda record: None,
        store: str | None = None,
        start_method: str | None = None,
        backend_options: Mapping[str, Any] | None = None,
        model_limits: Mapping[str, Mapping[str, float | None]] | None = None,
    ) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ConfigurationError(f"no backend {backend!r}; known: {sorted(BACKENDS)}")
        if backend_options and backend is None:
            raise ConfigurationError("backend options need a backend named to take them")
        self.store = store  # the quota's store for every backend (None: each kind's own)
        self.backend_options = dict(backend_options or {})
        self.limits = limits
        self.model_limits = per_model.limits_table(model_limits or {}, limits.burst_seconds)
        # What the batch runs at, listed models included: sizes its processes and its window.
        self.batch_limits = per_model.combined_limits(limits, self.model_limits)
        self.execution = execution
        self.processes = processes
        self.max_workers = max_workers
        self.backend_name = backend
        self.late_usage = late_usage
        self.start_method = choose_start_method(start_method)  # of worker processes
        self.backend: Backend | None = None
        self._plan: Plan | None = None
        self._kept: dict[str, RateLimiter] = {}  # limiters of ``shared`` kinds, by store
        self._busy = threading.Lock()
        self.keys = KeyGuard()  # stops sending with a key the provider keeps refusing
        _ALL_RUNTIMES.add(self)

    # -- choosing -------------------------------------------------------------------------
    def processes_for(self, size: int | None) -> int:
        """Worker processes for a batch of ``size`` requests (None: unknown); 0 runs threads."""
        if self.processes is not None:
            return self.processes
        per_process = calls_per_second_per_process(self.execution.transport)
        return default_processes(self.batch_limits.requests_per_minute, size, per_process)

    def plan(self, size: int | None, max_workers: int | None = None) -> Plan:
        """The backend and shape a batch of ``size`` requests runs on."""
        processes = self.processes_for(size)
        threads = max_workers or self.max_workers
        per_process = (
            MAX_THREADS_PER_PROCESS if threads is None else split_threads(threads, processes)
        )
        name = self.backend_name or ("threads" if processes == 0 else "processes")
        return Plan(name, processes, per_process)

    def most_threads(self) -> int:
        """The most threads a batch may run: ``max_workers``, else the cap for a large batch."""
        if self.max_workers is not None:
            return self.max_workers
        return MAX_THREADS_PER_PROCESS * max(1, self.processes_for(None))

    def window(self, plan: Plan, max_workers: int | None = None) -> Window:
        """How many requests the batch keeps in flight (see ``sizing``)."""
        slack = 4 * max(1, plan.processes)  # room for results waiting to be yielded in order
        threads = max_workers or self.max_workers
        if threads is not None:
            return FixedWindow(threads + slack)
        # Threads start lazily: a high cap costs nothing until used.
        cap = plan.threads * max(1, plan.processes)
        limits = (self.batch_limits.requests_per_minute, self.batch_limits.tokens_per_minute)
        return LatencyWindow(*limits, cap=cap, slack=slack)

    # -- one batch at a time --------------------------------------------------------------
    def start_batch(self, size: int | None, max_workers: int | None) -> tuple[Backend, Window]:
        """The backend for a batch and its window; ``batch_finished`` must follow."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this client is already running a batch; use another client")
        try:
            plan = self.plan(size, max_workers)
            self.keys.new_batch()
            return self._backend_for(plan), self.window(plan, max_workers)
        except BaseException:
            self._busy.release()
            raise

    def batch_finished(self, backend_usable: bool) -> None:
        """The batch ended; an abandoned backend is closed, the next batch starts a new one."""
        if not backend_usable:
            self.close_backend()
        self._busy.release()

    def _backend_for(self, plan: Plan) -> Backend:
        if self.backend is None or self._plan != plan:
            self.close_backend()
            kind = BACKENDS[plan.backend]
            self.backend = kind.start(self, plan, self._limiter_for(kind))
            self._plan = plan
        return self.backend

    def _limiter_for(self, kind: BackendKind) -> RateLimiter:
        store = self.store or kind.store
        if store == "shared-memory":  # its locks must suit how the workers start
            store = f"shared-memory://{self.start_method}"
        if not kind.shared:
            return self._new_limiter(store)
        if store not in self._kept:
            self._kept[store] = self._new_limiter(store)
        return self._kept[store]

    def _new_limiter(self, store: str) -> RateLimiter:
        """The client-wide limiter over ``store``, with one per listed model beside it."""

        def make(limits: Limits, model: str) -> RateLimiter:
            return limiter_for(per_model.store_for_model(store, model) if model else store, limits)

        return per_model.limiter_set(make, self.limits, self.model_limits)

    # -- lifecycle ------------------------------------------------------------------------
    def close_backend(self) -> None:
        backend, self.backend, self._plan = self.backend, None, None
        if backend is not None:
            backend.close()

    def close(self) -> None:
        """Stop the workers and release the limiters; a later batch starts afresh."""
        self.close_backend()
        kept, self._kept = self._kept, {}
        for limiter in kept.values():
            limiter.close()

    def forget(self) -> None:
        """In a forked child: start over, leaving the parent's workers and limiters to it."""
        backend, self.backend, self._plan, self._kept = self.backend, None, None, {}
        if backend is not None:
            backend.forget()

    def __repr__(self) -> str:
        return f"<Runtime processes={self.processes} backend={self.backend!r}>"


_ALL_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _forget_inherited() -> None:
    for runtime in list(_ALL_RUNTIMES):
        runtime.forget()


# A forked child that used a client's workers would fail every request, and one that exits
# normally would terminate them; instead its clients start their own workers when next used.
os.register_at_fork(after_in_child=_forget_inherited)
