"""``SharedMemoryRateLimiter``: one quota for every thread of every worker process.

The coordinator creates the limiter; its state (``bucket``'s float64 layout, ``bucket.SLOTS``
slots = 192 bytes) lives in one ``multiprocess.shared_memory.SharedMemory`` block and a
``multiprocess.Lock`` guards it. Worker processes reach the same block:

- by inheritance (the engine's way): pass the limiter as an argument of a
  ``multiprocess.get_context("fork").Process``; the child uses the parent's mapping as is;
- by pickling, for the spawn and forkserver start methods: the pickle carries the block's name and
  the lock (so, like any lock, only while a process is being started; create the limiter with
  ``context=`` that start method's context). The child maps the block without registering it
  with the resource tracker, which in Python 3.11 would unlink it (or warn) when the child exits.

A worker killed while it holds the lock (SIGKILL, ``terminate()``) would leave every process
waiting forever; the lock is held for microseconds, so a waiter that finds it taken for
``stale_lock_seconds`` breaks it (with a warning) instead.

Exactly one process owns the block: the one that created it. Its ``close()`` (idempotent; also
run when the limiter is garbage-collected or the interpreter exits) unmaps and unlinks it;
``close()`` anywhere else only unmaps. Close the owner after the workers have finished.

Example::

    limiter = SharedMemoryRateLimiter(Limits(requests_per_minute=3_000))
    worker = multiprocess.get_context("fork").Process(target=run, args=(limiter,))
    worker.start(); worker.join()
    limiter.close()
"""

from __future__ import annotations

import _posixshmem  # CPython's POSIX shm module, which multiprocess uses too
import contextlib
import logging
import mmap
import os
import time
import weakref
from typing import Any, cast

import multiprocess
from multiprocess.shared_memory import SharedMemory

from llm_api_client._constants import STALE_LOCK_SECONDS
from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import Clock, Limits, Sleep
from llm_api_client.ratelimit.core import LockedStateRateLimiter

__all__ = ["SharedMemoryRateLimiter"]

logger = logging.getLogger(__name__)

_SLOT_BYTES = 8  # float64


class _Segment:
    """One mapping of the limiter's block in this process; unlinks it only in the creator."""

    def __init__(self, name: str, view: memoryview, owner: SharedMemory | None) -> None:
        self.name = name
        self._view = view
        self.view = cast(bucket.State, view)  # a float64 view reads and writes floats
        self._owner = owner
        self._mapping: mmap.mmap | None = None
        self._owner_pid = os.getpid() if owner is not None else -1

    @classmethod
    def create(cls, initial: list[float]) -> _Segment:
        shm = SharedMemory(create=True, size=len(initial) * _SLOT_BYTES)
        view = shm.buf.cast("d")
        for slot in range(1, len(initial)):
            view[slot] = initial[slot]
        view[bucket.LAYOUT] = initial[bucket.LAYOUT]
        return cls(shm.name, view, shm)

    @classmethod
    def attach(cls, name: str) -> _Segment:
        """Map an existing block by name, leaving the resource tracker out of it."""
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
        try:
            mapping = mmap.mmap(fd, bucket.SLOTS * _SLOT_BYTES)
        finally:
            os.close(fd)
        segment = cls(name, memoryview(mapping).cast("d"), None)  # type: ignore[arg-type]
        segment._mapping = mapping
        if segment.view[bucket.LAYOUT] != bucket.LAYOUT_VERSION:
            segment.close()
            raise RuntimeError(f"shared memory {name!r} does not hold a rate limiter")
        return segment

    def unlink(self) -> None:
        """Remove the block's name, from any process that inherited the creator's mapping.

        Only the first call anywhere removes it (and tells the resource tracker); mappings stay.
        """
        if self._owner is not None:
            self._unlink()

    def close(self) -> None:
        """Unmap (idempotent); in the creating process, also unlink the block."""
        self._view.release()
        if self._mapping is not None:
            self._mapping.close()
        if self._owner is not None:
            self._owner.close()
            if os.getpid() == self._owner_pid:
                self._unlink()

    def _unlink(self) -> None:
        assert self._owner is not None
        with contextlib.suppress(FileNotFoundError):
            self._owner.unlink()
        self._owner_pid = -1


class _BreakableLock:
    """The process-shared lock, broken by a waiter when its holder died holding it."""

    def __init__(self, lock: Any, stale_after: float) -> None:
        self.lock = lock
        self.stale_after = stale_after

    def __enter__(self) -> None:
        if not self.lock.acquire(True, self.stale_after):
            self._break()

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()

    def _break(self) -> None:
        logger.warning(
            "the rate limiter's lock was held for %.0f s, so its holder died inside acquire;"
            " breaking it",
            self.stale_after,
        )
        with contextlib.suppress(ValueError):  # another waiter broke it first
            self.lock.release()
        if not self.lock.acquire(True, self.stale_after):
            raise RuntimeError("the rate limiter's lock cannot be taken even after breaking it")


class SharedMemoryRateLimiter(LockedStateRateLimiter):
    """A token-bucket limiter shared by every thread of every process that holds it.

    ``clock`` must be system-wide (``time.monotonic`` is, on Linux): times are compared across
    processes. ``sleep`` as for ``InProcessRateLimiter``. ``context`` is the ``multiprocess``
    context whose start method the workers use (default: the default one, fork on Linux).
    ``probe_seconds``: slow start, as for ``InProcessRateLimiter``.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        probe_seconds: float = 0.0,
        context: Any = None,
        stale_lock_seconds: float = STALE_LOCK_SECONDS,
    ) -> None:
        super().__init__(limits, clock, sleep)
        self._lock = _BreakableLock((context or multiprocess).Lock(), stale_lock_seconds)
        self._attach(_Segment.create(bucket.initial_state(limits, clock(), probe_seconds)))

    def _attach(self, segment: _Segment) -> None:
        self._segment = segment
        self._state = segment.view
        self._finalizer = weakref.finalize(self, segment.close)

    @property
    def name(self) -> str:
        """The shared-memory block's name (``/dev/shm/<name>`` on Linux)."""
        return self._segment.name

    def close(self) -> None:
        """Unmap the block; the creating process also unlinks it. Idempotent."""
        self._finalizer()

    def unlink(self) -> None:
        """Remove the block's name now; for a worker whose coordinator died without closing it.

        Works in any process forked from the creator; the mappings stay valid. Idempotent.
        """
        self._segment.unlink()

    def __repr__(self) -> str:
        if not self._finalizer.alive:
            return f"{type(self).__name__}(closed, name={self.name!r})"
        return super().__repr__()

    def __enter__(self) -> SharedMemoryRateLimiter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "limits": self.limits,
            "name": self._segment.name,
            "lock": self._lock,
            "clock": self._clock,
            "sleep": self._sleep,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__init__(state["limits"], state["clock"], state["sleep"])
        self._lock = state["lock"]
        self._attach(_Segment.attach(state["name"]))
