"""The shared-memory limiter across real processes: exact counts, ownership, no leftovers."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import multiprocess
import pytest
from multiprocess.connection import wait

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


# --- a worker killed while it holds the lock ------------------------------------------------------

_die_in_clock = False


def dying_clock() -> float:
    """``time.monotonic``, except in a process that set ``_die_in_clock``: that one is killed.

    The store reads its clock while it holds the lock, so the kill lands inside the critical
    section, as an OOM kill or ``kill -9`` in the middle of an acquisition would.
    """
    if _die_in_clock:
        os.kill(os.getpid(), signal.SIGKILL)
    return time.monotonic()


def die_inside_the_lock(limiter: SharedMemoryRateLimiter) -> None:
    global _die_in_clock
    _die_in_clock = True
    limiter.acquire(Cost())


def killed_holding_the_lock(limiter: SharedMemoryRateLimiter) -> Any:
    """A worker killed inside the critical section: dead, not yet reaped, the lock still held."""
    victim = FORK.Process(target=die_inside_the_lock, args=(limiter,))
    victim.start()
    assert wait([victim.sentinel], timeout=60)
    assert not limiter.store._lock.lock.acquire(False)  # held, by a dead process
    assert limiter.store._segment.view[0] == victim.pid  # which left its pid in the holder slot
    return victim


def acquire_timed(limiter: SharedMemoryRateLimiter, count: int, out: Any) -> None:
    start = time.monotonic()
    for _ in range(count):
        limiter.acquire(Cost())
    out.put(time.monotonic() - start)


def test_a_worker_killed_holding_the_lock_stalls_the_others_less_than_a_second() -> None:
    limits = Limits(requests_per_minute=10**6)
    with SharedMemoryRateLimiter(
        limits, clock=dying_clock, context=FORK, stale_lock_seconds=20
    ) as limiter:
        victim = killed_holding_the_lock(limiter)
        out = FORK.Queue()
        others = [FORK.Process(target=acquire_timed, args=(limiter, 20, out)) for _ in range(3)]
        for other in others:
            other.start()  # (starting a process reaps the victim: gone from /proc)
        acquire_timed(limiter, 20, out)
        stalls = [out.get(timeout=60) for _ in range(4)]
        for other in others:
            other.join(timeout=60)
        victim.join(timeout=60)
        assert victim.exitcode == -signal.SIGKILL
        assert [other.exitcode for other in others] == [0, 0, 0]
        assert max(stalls) < 1.0, stalls
        assert limiter.snapshot().admitted == 80  # the victim died before taking anything


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_a_holder_killed_but_not_yet_reaped_counts_as_gone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = Limits(requests_per_minute=10**6)
    with SharedMemoryRateLimiter(
        limits, clock=dying_clock, context=FORK, stale_lock_seconds=20
    ) as limiter:
        victim = killed_holding_the_lock(limiter)
        while process_state(victim.pid) != "Z":  # a zombie, which kill(pid, 0) still finds
            time.sleep(0.001)  # (the sentinel closes while the process is still exiting)
        start = time.monotonic()
        assert limiter.acquire(Cost()) == 0.0
        assert time.monotonic() - start < 1.0
        victim.join(timeout=60)
    assert f"process {victim.pid} died holding the rate limiter's lock" in caplog.text


def hold_the_lock(limiter: SharedMemoryRateLimiter, seconds: float, held: Any) -> None:
    with limiter.store._lock:
        held.set()
        time.sleep(seconds)


def test_a_live_holder_keeps_the_lock_however_long_it_takes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with SharedMemoryRateLimiter(Limits(requests_per_minute=600), context=FORK) as limiter:
        held = FORK.Event()
        holder = FORK.Process(target=hold_the_lock, args=(limiter, 1.0, held))
        holder.start()
        assert held.wait(timeout=60)
        start = time.monotonic()
        limiter.acquire(Cost())  # waits out the holder: ten polls find it alive
        assert time.monotonic() - start > 0.8
        holder.join(timeout=60)
        assert holder.exitcode == 0
    assert "taking it over" not in caplog.text


def die_holding_the_lock_unnamed(limiter: SharedMemoryRateLimiter) -> None:
    limiter.store._lock.lock.acquire()  # killed before it could write its pid
    os._exit(0)


def test_a_lock_left_by_an_unknown_holder_is_overruled_after_stale_lock_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = Limits(requests_per_minute=600)
    with SharedMemoryRateLimiter(limits, context=FORK, stale_lock_seconds=0.2) as limiter:
        worker = FORK.Process(target=die_holding_the_lock_unnamed, args=(limiter,))
        worker.start()
        worker.join(timeout=60)
        assert worker.exitcode == 0
        assert limiter.acquire(Cost()) == 0.0
        assert limiter.acquire(Cost()) == 0.0  # and the lock works normally afterwards
    assert "held for over 0.2 s by process unknown" in caplog.text


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
