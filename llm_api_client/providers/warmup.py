"""Warm litellm up once per process before a batch starts.

litellm builds its pydantic response types and imports its provider code lazily, on the first
call: 0.5 to 4 s of CPU. Paid inside a batch, that delay sits between the rate limiter's
admission and the request leaving, so the requests admitted meanwhile leave together: a burst
the provider answers with 429s. Paid before forking workers, it is paid once for all of them.
A response unpickled in a process that never built one cannot even ``model_dump()`` (litellm's
lazily built serializer), which the warm-up also fixes in the coordinator.

The warm-up calls the ``litellm.completion`` this module found at import (with ``APIClient``),
not the one litellm holds at call time: code that patches ``litellm.completion`` after
importing ``APIClient`` sees only the calls of its batches, never the warm-up's.

Both warm-up calls run on a short-lived thread of their own. Called from the main thread,
litellm's service logging asks ``asyncio.get_event_loop()``, which there makes and sets a
loop nobody closes; the caller's next ``asyncio.run`` then drops it unclosed (a
``ResourceWarning``). On another thread it finds no loop and uses one it closes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from llm_api_client import _offline

litellm = _offline.litellm()
_completion = litellm.completion

_warmed = False
_types_built = False
_lock = threading.Lock()

# The discard port on loopback: the connection is refused at once, and by then litellm has
# loaded everything an OpenAI-compatible call needs.
_REFUSING_API_BASE = "http://127.0.0.1:9/v1"
_MESSAGES = [{"role": "user", "content": "warm-up"}]


def build_response_types() -> None:
    """Let responses unpickled in this process be dumped: build litellm's serializers, once."""
    global _types_built
    with _lock:
        if _types_built:
            return
        _types_built = True
        _off_this_thread(_build_and_dump)


def _build_and_dump() -> None:
    _completion(model="gpt-4o-mini", messages=_MESSAGES, mock_response="ok").model_dump()


def _send_refused() -> None:
    with contextlib.suppress(Exception):
        _completion(
            model="openai/gpt-4o-mini",
            messages=_MESSAGES,
            api_base=_REFUSING_API_BASE,
            api_key="warm-up",
            max_retries=0,
            timeout=2,
        )


def _off_this_thread(call: Callable[[], None]) -> None:
    """Run ``call`` on a thread of its own and wait; its exception is raised here."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="llm-api-client-warm-up", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def warm_litellm() -> None:
    """Make litellm's first real call cheap in this process and the processes it forks."""
    global _warmed
    build_response_types()
    with _lock:
        if _warmed:
            return
        _warmed = True
        _off_this_thread(_send_refused)
