"""Waits that end when their batch is abandoned, so that a request given up is never sent.

Before each call a request may wait twice: for its turn in the rate limiter (or the limiter's
slow start), and in a retry's backoff. Both waits go through ``sleep`` here. In a thread that
runs inside ``cancelled_by(event)`` it returns as soon as ``event`` is set, raising
``Abandoned``; the limiter then gives the reservation back and the request ends unsent.
Elsewhere (worker processes, which an abandon kills instead) it is ``time.sleep``.

Example::

    with cancelled_by(backend_abandoned):
        outcome = run_item(item, limiter, config)  # ends early, unsent, once abandoned
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from llm_api_client.errors import LLMAPIClientError

__all__ = ["Abandoned", "cancelled_by", "sleep"]

_scope = threading.local()


class Abandoned(LLMAPIClientError):
    """The batch gave the request up while it waited; it was not sent (again).

    Internal: the batch has stopped yielding results when it is raised, so no caller sees it.
    """


@contextlib.contextmanager
def cancelled_by(event: threading.Event) -> Iterator[None]:
    """Make this thread's ``sleep`` calls raise ``Abandoned`` once ``event`` is set."""
    previous = getattr(_scope, "event", None)
    _scope.event = event
    try:
        yield
    finally:
        _scope.event = previous


def sleep(seconds: float) -> None:
    """``time.sleep``, cut short by this thread's ``cancelled_by`` event (``Abandoned``)."""
    event: threading.Event | None = getattr(_scope, "event", None)
    if event is None:
        time.sleep(seconds)
    elif event.wait(seconds):
        raise Abandoned("the batch was abandoned while the request waited to be sent")
