"""The shared-memory limiter across real processes: exact counts, ownership, no leftovers."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
from typing import Any

import multiprocess
import pytest

from llm_api_client.errors import RateLimitDelayExceeded
from llm_api_client.ratelimit import Cost, Limits, SharedMemoryRateLimiter

FORK = multiprocess.get_context("fork")


def exactly_n_limits(n: int) -> Limits:
    """A bucket of ``n`` requests that refills one request per minute: n admissions, no more."""
    return Limits(requests_per_minute=1, burst_seconds=60.0 * n)


def try_many(limiter: SharedMemoryRateLimiter, threads: int, attempts: int, out: Any) -> None:
    """Worker: ``threads`` threads each try ``attempts`` immediate acquisitions; report admitted."""
    admitted = [0] * threads

    def run(slot: int) -> None:
        for _ in range(attempts):
            try:
                limiter.acquire(Cost(), max_delay=0)
                admitted[slot] += 1
            except RateLimitDelayExceeded:
                pass

    pool = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(sum(admitted))


def test_processes_and_threads_contending_admit_exactly_capacity() -> None:
    capacity, processes, threads, attempts = 500, 3, 8, 60  # 1,440 attempts for 500 places
    with SharedMemoryRateLimiter(exactly_n_limits(capacity), context=FORK) as limiter:
        out = FORK.Queue()
        workers = [
            FORK.Process(target=try_many, args=(limiter, threads, attempts, out))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        counts = [out.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * processes
        assert sum(counts) == capacity
        assert limiter.snapshot().admitted == capacity


def acquire_and_close(limiter: SharedMemoryRateLimiter, count: int, out: Any) -> None:
    for _ in range(count):
        limiter.acquire(Cost(input_tokens=1))
    limiter.pause(0.001)
    out.put(limiter.snapshot().admitted)
    limiter.close()  # a worker's close only unmaps


def test_forked_workers_share_the_parents_state_and_do_not_unlink() -> None:
    limiter = SharedMemoryRateLimiter(Limits(requests_per_minute=10**6), context=FORK)
    out = FORK.Queue()
    workers = [FORK.Process(target=acquire_and_close, args=(limiter, 10, out)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert os.path.exists(f"/dev/shm/{limiter.name}")  # still there: workers do not own it
    snap = limiter.snapshot()
    assert (snap.admitted, snap.pauses) == (30, 3)
    limiter.close()
    limiter.close()  # idempotent
    assert not os.path.exists(f"/dev/shm/{limiter.name}")


def die_holding_the_lock(limiter: SharedMemoryRateLimiter) -> None:
    limiter.store._lock.lock.acquire()  # as if killed inside acquire
    os._exit(0)


def test_a_lock_left_by_a_killed_worker_is_broken(caplog: pytest.LogCaptureFixture) -> None:
    limits = Limits(requests_per_minute=600)
    with SharedMemoryRateLimiter(limits, context=FORK, stale_lock_seconds=0.2) as limiter:
        worker = FORK.Process(target=die_holding_the_lock, args=(limiter,))
        worker.start()
        worker.join(timeout=60)
        assert worker.exitcode == 0
        assert limiter.acquire(Cost()) == 0.0
        assert limiter.acquire(Cost()) == 0.0  # and the lock works normally afterwards
        assert "holder died" in caplog.text


def test_repr_of_a_closed_limiter() -> None:
    limiter = SharedMemoryRateLimiter(Limits(requests_per_minute=60))
    limiter.close()
    assert repr(limiter) == f"SharedMemoryRateLimiter(closed, name={limiter.name!r})"


def test_pickling_outside_process_start_is_refused() -> None:
    limiter = SharedMemoryRateLimiter(Limits(requests_per_minute=60))
    with limiter, pytest.raises(RuntimeError):
        pickle.dumps(limiter)


SCRIPT = """
import os, sys
import multiprocess
from llm_api_client.ratelimit import Cost, Limits, SharedMemoryRateLimiter

def work(limiter, out):
    for _ in range(5):
        limiter.acquire(Cost())
    out.put(limiter.snapshot().admitted)

if __name__ == "__main__":
    for method in ("fork", "spawn", "forkserver"):
        ctx = multiprocess.get_context(method)
        limiter = SharedMemoryRateLimiter(Limits(requests_per_minute=10**6), context=ctx)
        out = ctx.Queue()
        workers = [ctx.Process(target=work, args=(limiter, out)) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert [w.exitcode for w in workers] == [0, 0], method
        assert limiter.snapshot().admitted == 10, method
        print(method, limiter.name, flush=True)
        if method != "forkserver":
            limiter.close()  # the last one is left to the owner's exit
"""


def test_no_leftover_segment_and_no_resource_tracker_warning(tmp_path: Any) -> None:
    script = tmp_path / "share.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=100, check=False
    )
    assert done.returncode == 0, done.stderr
    names = [line.split()[1] for line in done.stdout.splitlines()]
    assert [line.split()[0] for line in done.stdout.splitlines()] == [
        "fork",
        "spawn",
        "forkserver",
    ]
    assert not [name for name in names if os.path.exists(f"/dev/shm/{name}")]
    assert "resource_tracker" not in done.stderr
    assert "leaked" not in done.stderr
    assert done.stderr == ""
