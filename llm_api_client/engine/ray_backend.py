"""The Ray backend: Ray actors take the worker processes' place, each a thread pool.

::

    coordinator (caller) ── actor.run.remote(CallItem) ──▶ call actor 0..N-1 (max_concurrency = T)
          ▲   one ObjectRef per item, ray.wait in poll        each thread: run_item (execution.py)
          └── Outcome (pickled bytes) ◀───────────────────      │ QuotaLimiter over the store
                                                                ▼
                                              the QuotaStore the backend was given (a
                                              ClusterStore actor, or Redis): one quota

The coordinator sends each item to the least-loaded live actor and keeps the item's
``ObjectRef``, so it knows what each actor holds. Ray's own fault tolerance is off
(``max_restarts=0``, ``max_task_retries=0``): Ray never sends a paid call again behind the
coordinator's back. When an actor dies, its items come back through ``lost()`` for the
coordinator's single re-dispatch, and a replacement actor is started (as many replacements as
actors, like the process backend). ``abandon`` kills the actors: calls on the wire are cut.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayActorError, RayError

from llm_api_client.engine.execution import ExecutionConfig, failed_outcome
from llm_api_client.engine.messages import CallItem, Outcome, decode
from llm_api_client.engine.worker import _run_and_send
from llm_api_client.errors import ConfigurationError, LLMAPIClientError
from llm_api_client.ratelimit.base import RateLimiter
from llm_api_client.ratelimit.limiter import QuotaLimiter
from llm_api_client.ratelimit.store import QuotaStore

if TYPE_CHECKING:
    from llm_api_client.engine.runtime import Plan, Runtime

# Items queued to an actor beyond its threads, so a thread that finishes finds work at once.
PREFETCH_PER_ACTOR = 4
# A clean shutdown waits this long for actors to finish what they hold.
SHUTDOWN_GRACE_SECONDS = 10.0
# What every call actor is started with; the user's options may add to them (``num_cpus``,
# ``resources``, ...) but never turn Ray's restarts and retries back on.
DEFAULT_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 0}
NO_RAY_RETRIES: dict[str, Any] = {"max_restarts": 0, "max_task_retries": 0}


def connect() -> None:
    """Connect to Ray unless connected: ``RAY_ADDRESS``'s cluster, else a new local one."""
    if not ray.is_initialized():
        ray.init()


class CallActor:
    """One Ray actor: runs items on its threads through a limiter over the shared store."""

    def __init__(self, store: QuotaStore, config: ExecutionConfig) -> None:
        config.transport.setup()  # this process's own HTTP clients
        self._limiter = limiter_over(store)
        self._config = config

    def run(self, item: CallItem) -> bytes:
        """The item's outcome, pickled here, so one that cannot be pickled fails alone."""
        sent: list[bytes] = []
        _run_and_send(item, self._limiter, self._config, sent.append)
        return sent[0]

    def pid(self) -> int:
        return os.getpid()


def limiter_over(store: QuotaStore) -> QuotaLimiter:
    """The limiter an actor runs over the store it received: the store's own kind if it has one.

    (A Redis store's wakes its sleepers on news of pauses from other hosts.)
    """
    make = getattr(store, "limiter", None)
    return make() if make is not None else QuotaLimiter(store)


@dataclass
class _Actor:
    handle: Any
    in_flight: dict[int, CallItem] = field(default_factory=dict)
    dead: bool = False


def start_ray(runtime: Runtime, plan: Plan, limiter: RateLimiter) -> RayBackend:
    """The runtime's ``"ray"`` backend: ``plan.processes`` actors (at least one)."""
    if not isinstance(limiter, QuotaLimiter):
        raise ConfigurationError("the Ray backend needs a limiter over a QuotaStore")
    options = runtime.backend_options
    actors = max(1, plan.processes)
    return RayBackend(limiter, runtime.execution, actors, plan.threads, actor_options=options)


class RayBackend:
    """``actors`` Ray actors x ``threads`` threads sharing ``limiter``'s store; owns ``limiter``."""

    def __init__(
        self,
        limiter: QuotaLimiter,
        config: ExecutionConfig,
        actors: int,
        threads: int,
        *,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        connect()
        options = {**DEFAULT_ACTOR_OPTIONS, **(actor_options or {}), **NO_RAY_RETRIES}
        self._actor_class = ray.remote(CallActor).options(max_concurrency=threads, **options)
        self._limiter = limiter
        self._store = limiter.store  # what each actor receives: the quota, not this limiter
        self._config = config
        self._threads = threads
        self._pending: dict[Any, tuple[_Actor, CallItem]] = {}  # ObjectRef -> where, what
        self._lost: list[CallItem] = []
        self._respawns_left = actors  # a crash loop must not start actors forever
        self._actors = [self._start_actor() for _ in range(actors)]

    @property
    def capacity(self) -> int:
        return len(self._actors) * (self._threads + PREFETCH_PER_ACTOR)

    @property
    def actors(self) -> list[Any]:
        """The live actors' handles (for monitoring: ``ray.get(handle.pid.remote())``)."""
        return [actor.handle for actor in self._actors]

    def _start_actor(self) -> _Actor:
        return _Actor(self._actor_class.remote(self._store, self._config))

    def submit(self, item: CallItem) -> None:
        if not self._actors:
            raise RuntimeError("no live Ray actor")
        actor = min(self._actors, key=lambda a: len(a.in_flight))
        ref = actor.handle.run.remote(item)
        actor.in_flight[item.index] = item
        self._pending[ref] = (actor, item)

    def poll(self, timeout: float) -> list[Outcome]:
        if not self._pending:
            time.sleep(timeout)
            return []
        refs = list(self._pending)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # take everything finished by now, not only the first
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        outcomes = [self._settle(ref) for ref in ready]
        return [outcome for outcome in outcomes if outcome is not None]

    def _settle(self, ref: Any) -> Outcome | None:
        """The item's outcome; None when its actor died with it (then it is lost, to resend)."""
        actor, item = self._pending.pop(ref)
        actor.in_flight.pop(item.index, None)
        try:
            return decode(ray.get(ref))
        except RayActorError:
            self._lost.append(item)
            self._bury(actor)
            return None
        except RayError as exc:  # the answer was lost on its way back: never resent blindly
            error = LLMAPIClientError(f"Ray could not return the outcome: {exc!r}")
            return failed_outcome(item.index, item.request, error)

    def _bury(self, actor: _Actor) -> None:
        """Replace a dead actor once, however many of its items report its death."""
        if actor.dead:
            return
        actor.dead = True
        self._actors.remove(actor)
        if self._respawns_left > 0 or not self._actors:
            self._respawns_left -= 1
            self._actors.append(self._start_actor())

    def lost(self) -> list[CallItem]:
        lost, self._lost = self._lost, []
        return lost

    def abandon(self) -> None:
        """Kill every actor now: calls on the wire are cut, nothing more is sent."""
        self._kill_actors()
        self._pending.clear()

    def close(self) -> None:
        """Let the actors finish what they hold, then kill them and close the limiter."""
        if self._pending:
            ray.wait(
                list(self._pending), num_returns=len(self._pending), timeout=SHUTDOWN_GRACE_SECONDS
            )
        self._kill_actors()
        self._pending.clear()
        self._limiter.close()

    def _kill_actors(self) -> None:
        for actor in self._actors:
            ray.kill(actor.handle, no_restart=True)
        self._actors = []

    def forget(self) -> None:
        """In a forked child: drop the parent's actors without touching them."""
        self._actors = []
        self._pending.clear()

    def __repr__(self) -> str:
        return (
            f"<RayBackend actors={len(self._actors)} threads={self._threads} "
            f"in_flight={len(self._pending)}>"
        )
