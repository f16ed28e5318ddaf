"""``SharedMemoryStore``: one quota for every thread of every process of this host.

The coordinator creates the store; its state (``bucket``'s float64 layout) lives in one
``multiprocess.shared_memory.SharedMemory`` block, after one slot naming the process that holds
the lock, and a ``multiprocess.Lock`` guards it. Worker processes reach the same block:

- by inheritance (the engine's way): pass the store, or a limiter over it, as an argument of a
  ``multiprocess.get_context("fork").Process``; the child uses the parent's mapping as is;
- by pickling, for the spawn and forkserver start methods: the pickle carries the block's name and
  the locks (so, like any lock, only while a process is being started; create the store with
  ``context=`` that start method's context). The child maps the block without registering it
  with the resource tracker, which in Python 3.11 would unlink it (or warn) when the child exits.

A worker killed while it holds the lock (SIGKILL, ``terminate()``, out of memory) cannot release
it. The holder writes its pid next to the state; a waiter kept out for ``LOCK_POLL_SECONDS``
looks that process up and, when it is gone, takes the lock over (see ``_CrashSafeLock``): the
others stall for about that long, not for ever. The dead holder's operation may be left half
applied (a request charged to some buckets only, a learned limit not fully adopted): an error in
the pace the next operations live with, never a stall.

Exactly one process owns the block: the one that created it. Its ``close()`` (idempotent; also
run when the store is garbage-collected or the interpreter exits) unmaps and unlinks it;
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

from llm_api_client._constants import LOCK_POLL_SECONDS, STALE_LOCK_SECONDS
from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import Clock, Limits
from llm_api_client.ratelimit.limiter import NewStoreLimiter
from llm_api_client.ratelimit.store import LockedStore

__all__ = ["SharedMemoryRateLimiter", "SharedMemoryStore"]

logger = logging.getLogger(__name__)

_SLOT_BYTES = 8  # float64
_HOLDER = 0  # slot 0: pid of the process holding the lock, 0 when free (or not yet written)
_STATE = 1  # the bucket state starts at slot 1
_HAS_PROC = os.path.exists("/proc/self/stat")


# The lock's fast path writes this process's pid: kept here (os.getpid is a system call), and
# renewed in a forked child.
_own_pid = os.getpid()


def _forked() -> None:
    global _own_pid
    _own_pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class _Segment:
    """One mapping of the store's block in this process; unlinks it only in the creator."""

    def __init__(self, name: str, view: memoryview, owner: SharedMemory | None) -> None:
        self.name = name
        self._view = view
        self._state_view = view[_STATE:]
        self.view = cast(bucket.State, view)  # a float64 view reads and writes floats
        self.state = cast(bucket.State, self._state_view)
        self._owner = owner
        self._mapping: mmap.mmap | None = None
        self._owner_pid = os.getpid() if owner is not None else -1

    @classmethod
    def create(cls, initial: list[float]) -> _Segment:
        shm = SharedMemory(create=True, size=(_STATE + len(initial)) * _SLOT_BYTES)
        view = shm.buf.cast("d")
        for slot in range(1, len(initial)):
            view[_STATE + slot] = initial[slot]
        view[_STATE + bucket.LAYOUT] = initial[bucket.LAYOUT]  # last: the state is complete
        return cls(shm.name, view, shm)

    @classmethod
    def attach(cls, name: str) -> _Segment:
        """Map an existing block by name, leaving the resource tracker out of it."""
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
        try:
            mapping = mmap.mmap(fd, (_STATE + bucket.SLOTS) * _SLOT_BYTES)
        finally:
            os.close(fd)
        segment = cls(name, memoryview(mapping).cast("d"), None)  # type: ignore[arg-type]
        segment._mapping = mapping
        if segment.state[bucket.LAYOUT] != bucket.LAYOUT_VERSION:
            segment.close()
            raise RuntimeError(f"shared memory {name!r} does not hold a rate limiter's quota")
        return segment

    def unlink(self) -> None:
        """Remove the block's name, from any process that inherited the creator's mapping.

        Only the first call anywhere removes it (and tells the resource tracker); mappings stay.
        """
        if self._owner is not None:
            self._unlink()

    def close(self) -> None:
        """Unmap (idempotent); in the creating process, also unlink the block."""
        self._state_view.release()
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


class _CrashSafeLock:
    """The process-shared lock, taken over from a holder that died holding it.

    The holder writes its pid in the block's holder slot while it holds ``lock``. A waiter kept
    out for ``poll`` seconds looks that process up; if it is gone (or a zombie not yet reaped),
    the waiter takes the lock over as it is, under ``takeover`` so that only one waiter does. A
    lock is released only by whoever holds it, so two callers are never inside together. A
    holder that cannot be identified, or still runs after ``stale_after`` seconds (stopped, or a
    new process reusing a dead one's pid), is overruled the same way, with a warning.
    """

    def __init__(
        self, lock: Any, takeover: Any, view: bucket.State, poll: float, stale_after: float
    ) -> None:
        self.lock = lock
        self.takeover = takeover
        self._view = view
        self._poll = poll
        self.stale_after = stale_after

    def __enter__(self) -> None:
        if not self.lock.acquire(True, self._poll):
            self._recover()
        self._view[_HOLDER] = _own_pid

    def __exit__(self, *exc_info: object) -> None:
        self._view[_HOLDER] = 0.0  # before releasing: the next holder writes its own
        self.lock.release()

    def _recover(self) -> None:
        """Kept out for a poll: take the lock over from a dead holder, or wait on."""
        started = time.monotonic() - self._poll
        while True:
            holder = int(self._view[_HOLDER])
            stale = time.monotonic() - started > self.stale_after
            if (stale or (holder and not _exists(holder))) and self._take_over(holder):
                return
            if self.lock.acquire(True, self._poll):
                return

    def _take_over(self, holder: int) -> bool:
        """Take the lock from ``holder`` unless it changed hands meanwhile; True when ours."""
        if not self.takeover.acquire(True, self.stale_after):
            raise RuntimeError("the rate limiter's lock cannot be recovered")
        try:
            if self.lock.acquire(False):
                return True  # released after all
            if int(self._view[_HOLDER]) != holder:
                return False  # another waiter took it over, or it changed hands
            self._view[_HOLDER] = _own_pid
        finally:
            self.takeover.release()
        if holder and not _exists(holder):
            logger.warning(
                "process %d died holding the rate limiter's lock; taking it over", holder
            )
        else:
            logger.warning(
                "the rate limiter's lock was held for over %g s by process %s; taking it over",
                self.stale_after,
                holder or "unknown",
            )
        return True


def _exists(pid: int) -> bool:
    """Whether process ``pid`` is still running (a zombie, dead but not yet reaped, is not)."""
    if not _HAS_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # "pid (command) S ...": the command may hold any character, so find its last ")".
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


class SharedMemoryStore(LockedStore):
    """A quota in shared memory, for every thread of every process that holds the store.

    ``clock`` must be system-wide (``time.monotonic`` is, on Linux): times stored by one process
    are compared by another. ``probe_seconds``: slow start, as for ``LocalStore``. ``context``
    is the ``multiprocess`` context whose start method the workers use (default: the default
    one, fork on Linux).
    """

    _lock: _CrashSafeLock

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        probe_seconds: float = 0.0,
        context: Any = None,
        stale_lock_seconds: float = STALE_LOCK_SECONDS,
    ) -> None:
        super().__init__(limits, clock)
        context = context or multiprocess
        segment = _Segment.create(bucket.initial_state(limits, clock(), probe_seconds))
        self._attach(segment, context.Lock(), context.Lock(), stale_lock_seconds)

    def _attach(self, segment: _Segment, lock: Any, takeover: Any, stale_after: float) -> None:
        self._segment = segment
        self._state = segment.state
        self._lock = _CrashSafeLock(lock, takeover, segment.view, LOCK_POLL_SECONDS, stale_after)
        self._finalizer = weakref.finalize(self, segment.close)

    @property
    def name(self) -> str:
        """The shared-memory block's name (``/dev/shm/<name>`` on Linux)."""
        return self._segment.name

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Unmap the block; the creating process also unlinks it. Idempotent."""
        self._finalizer()

    def unlink(self) -> None:
        """Remove the block's name now, from any process forked from the creator. Idempotent."""
        self._segment.unlink()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}{', closed' if self.closed else ''})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "limits": self.limits,
            "clock": self._clock,
            "name": self._segment.name,
            "lock": self._lock.lock,
            "takeover": self._lock.takeover,
            "stale_after": self._lock.stale_after,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__init__(state["limits"], state["clock"])
        segment = _Segment.attach(state["name"])
        self._attach(segment, state["lock"], state["takeover"], state["stale_after"])


class SharedMemoryRateLimiter(NewStoreLimiter):
    """The rate limiter over a new ``SharedMemoryStore``: one quota for many processes.

    Arguments as for ``SharedMemoryStore``; ``clock`` is also the limiter's, ``sleep`` as for
    ``QuotaLimiter``. ``close()`` (or leaving a ``with`` block) closes the store.
    """

    store_type = SharedMemoryStore
    store: SharedMemoryStore

    @property
    def name(self) -> str:
        """The shared-memory block's name (``/dev/shm/<name>`` on Linux)."""
        return self.store.name

    def unlink(self) -> None:
        """Remove the block's name now; for a worker whose coordinator died without closing it.

        Works in any process forked from the creator; the mappings stay valid. Idempotent.
        """
        self.store.unlink()

    def __repr__(self) -> str:
        if self.store.closed:
            return f"{type(self).__name__}(closed, name={self.name!r})"
        return super().__repr__()
