"""The HTTP client litellm's OpenAI-compatible calls go through: one that never drops an answer.

litellm builds its synchronous OpenAI clients on a bare ``httpx.Client()``, whose pool keeps at
most 20 idle connections of 100. With more threads than that, the pool closes surplus idle
connections after every request, and httpcore 1.0.9 can close one that it has just handed to a
waiting request (encode/httpcore#1110, open): the socket is closed under a request that is
already sent, which then fails with ``Bad file descriptor`` or waits out its whole timeout
although the provider answered. Against the simulator that was 1-3 lost answers per few
thousand requests at 100-400 threads, with a bare thread pool as with this library.

So before its threads start, each process that runs requests gives litellm a client whose pool
keeps as many idle connections as it may open (``litellm.client_session``): idle connections
are then only closed when they expire, never as surplus, and none is closed under a request.
The pool still opens at most ``MAX_CONNECTIONS_PER_PROCESS`` (100, litellm's own default):
threads beyond that wait for a connection, as they do with plain litellm. That cap is also the
faster setting: at 500 ms of latency and 400 threads, one process answered 1,500 requests in
11-15 s with it and 16-20 s with no cap, where more calls at once only contend for the GIL.
A client the user set themselves is left alone. After a fork the child makes its own, since
the parent's connections are not its to use. SDK clients litellm cached before (on its own
pools) are dropped from its cache, so every later call uses the new pool.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import httpx

from llm_api_client._constants import MAX_CONNECTIONS_PER_PROCESS

_lock = threading.Lock()
_installed: httpx.Client | None = None
_installed_in: int | None = None  # the pid that made it
_forgotten_in: int | None = None  # the pid whose inherited clients were dropped


def install_http_client(litellm: Any) -> None:
    """Point ``litellm.client_session`` at a ``keep_alive_client``, unless the user set one."""
    global _installed, _installed_in
    with _lock:
        current = getattr(litellm, "client_session", None)
        if current is not None and current is not _installed:
            return  # the user's own client
        if current is not None and _installed_in == os.getpid():
            return  # already ours, in this process
        _installed = keep_alive_client()
        _installed_in = os.getpid()
        litellm.client_session = _installed
        forget_cached_clients(litellm)


def drop_inherited_clients() -> None:
    """Once per process: forget the SDK clients litellm cached before (a parent's, after a fork).

    Their sockets belong to the process that opened them. Does nothing until litellm is loaded.
    """
    global _forgotten_in
    litellm = sys.modules.get("litellm")
    with _lock:
        if litellm is None or _forgotten_in == os.getpid():
            return
        _forgotten_in = os.getpid()
    forget_cached_clients(litellm)


def forget_cached_clients(litellm: Any) -> None:
    """Drop the SDK clients litellm has cached (on its own pools, or forked from a parent).

    litellm closes an evicted client only once it is idle and out of a grace period, so calls
    still using one finish normally.
    """
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    if cache is not None:
        cache.flush_cache()


def keep_alive_client() -> httpx.Client:
    """An ``httpx.Client`` configured as litellm configures its own, keeping every connection."""
    verify, http2 = _litellm_transport_settings()
    limit = MAX_CONNECTIONS_PER_PROCESS
    return httpx.Client(
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
        verify=verify,
        http2=http2,
        follow_redirects=True,
    )


def _litellm_transport_settings() -> tuple[Any, bool]:
    """litellm's SSL settings (``ssl_verify``, certificates) and HTTP/2 switch, if it has them."""
    try:
        from litellm.llms.custom_httpx.http_handler import get_ssl_configuration, http2_enabled
    except ImportError:
        return True, False
    return get_ssl_configuration(), bool(http2_enabled())
