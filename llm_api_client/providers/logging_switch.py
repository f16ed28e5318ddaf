"""Spare litellm the success logging that nobody listens to.

After every successful ``litellm.completion``, litellm hands its success handler to a
background thread pool, which builds the standard logging payload and runs the registered
callbacks. This library reads usage from the response itself, so with no callback registered
(litellm's default) that work is pure overhead: about 0.6 ms of CPU per call, 12-16% of a whole
call against the simulator, and one more thread contending for the GIL.

litellm skips it for the calls it marks as its own internal sub-calls, with a context variable.
We set that mark around our calls only while litellm has no callback and no cache configured,
so a user's callbacks (Langfuse, a ``CustomLogger``, ...) and caching behave exactly as they
would without us. Should a litellm release drop the variable, calls simply log as before.

``add_success_callback`` registers a listener (the tracker's 0.1.8 ``track_cost_callback``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from llm_api_client import _offline

# Everything litellm runs on a call's behalf: while any of these is set, nothing is skipped.
_LISTENERS = (
    "callbacks",
    "success_callback",
    "_async_success_callback",
    "failure_callback",
    "_async_failure_callback",
    "input_callback",
    "_async_input_callback",
    "service_callback",
)


def _internal_call_flag() -> ContextVar[bool] | None:
    try:
        from litellm._internal_context import is_internal_call
    except ImportError:
        return None
    return is_internal_call if isinstance(is_internal_call, ContextVar) else None


def nobody_listens(litellm: Any) -> bool:
    """Whether litellm has no callback and no cache that a call's success logging would feed."""
    if getattr(litellm, "cache", None) is not None:
        return False
    return not any(getattr(litellm, name, None) for name in _LISTENERS)


@contextlib.contextmanager
def unheard_logging_skipped(litellm: Any) -> Iterator[None]:
    """Around one call: mark it internal when ``nobody_listens``, so litellm logs nothing."""
    flag = _FLAG
    if flag is None or not nobody_listens(litellm):
        yield
        return
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


_FLAG = _internal_call_flag()


def add_success_callback(callback: Callable[..., Any]) -> None:
    """Append ``callback`` to ``litellm.success_callback``, unless it is there already."""
    callbacks = _offline.litellm().success_callback
    if callback not in callbacks:
        callbacks.append(callback)
