"""The worker process: a thread pool that runs ``CallItem``s and sends back their outcomes.

A worker owns nothing but its threads: the rate limiter lives in shared memory owned by the
coordinator, and every outcome is sent back as soon as it is known. It ignores Ctrl-C (the
terminal sends SIGINT to the whole process group; the coordinator decides what stops) and
exits on its own when its parent dies, so no orphan keeps calling a paid API; on its way out it
unlinks the limiter's shared memory, which the dead coordinator can no longer do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_api_client._constants import PARENT_CHECK_INTERVAL_SECONDS
from llm_api_client.engine.execution import ExecutionConfig, failed_outcome, run_item
from llm_api_client.engine.messages import STOP, CallItem, WorkerExited, decode, encode
from llm_api_client.errors import LLMAPIClientError
from llm_api_client.ratelimit.base import RateLimiter


def worker_main(
    worker_id: int,
    tasks: Any,
    results: Any,
    limiter: RateLimiter,  # over shared memory (per model too: ratelimit.per_model)
    config: ExecutionConfig,
    *,
    threads: int,
    parent_pid: int,
) -> None:
    """Entry point of a worker process: run items from ``tasks`` until ``STOP`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_when_orphaned(parent_pid, limiter)
    config.transport.setup()  # this process's own HTTP clients, not the parent's
    send = _sender(results)
    with ThreadPoolExecutor(threads, thread_name_prefix=f"worker{worker_id}") as pool:
        while (data := _next_task(tasks)) != STOP:
            pool.submit(_run_and_send, decode(data), limiter, config, send)
    send(encode(WorkerExited(worker_id)))


def _next_task(tasks: Any) -> bytes:
    try:
        return bytes(tasks.recv_bytes())
    except (EOFError, OSError):  # the coordinator is gone: finish what we hold, then exit
        return STOP


def _sender(results: Any) -> Callable[[bytes], None]:
    """Whole messages from many threads: one writer at a time on the result pipe."""
    lock = threading.Lock()

    def send(data: bytes) -> None:
        # OSError: the coordinator is gone (broken pipe); there is nobody left to tell.
        with lock, contextlib.suppress(OSError):
            results.send_bytes(data)

    return send


def _run_and_send(
    item: CallItem, limiter: RateLimiter, config: ExecutionConfig, send: Callable[[bytes], None]
) -> None:
    outcome = run_item(item, limiter, config)
    try:
        data = encode(outcome)
    except Exception as exc:  # e.g. a response object that cannot be pickled
        error = LLMAPIClientError(f"the response could not be sent to the coordinator: {exc!r}")
        data = encode(failed_outcome(item.index, item.request, error))
    send(data)


def _exit_when_orphaned(parent_pid: int, limiter: RateLimiter) -> None:
    """Exit the process within a second of the parent's death (its pid is re-parented)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_INTERVAL_SECONDS)
        limiter.unlink()  # the first worker to get here removes it; the others find it gone
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
