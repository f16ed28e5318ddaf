"""The transport: how one attempt of a request reaches a provider, behind one small interface.

As with httpx's ``BaseTransport.handle_request``, the worker thread hands a request to
``complete`` and gets the provider's answer back, or one of our errors; it does not know what
carried the request. ``LiteLLMTransport`` (``litellm.completion``) is the default;
``FunctionTransport`` wraps any function with ``litellm.completion``'s signature: a fake in
tests, or the user's own ``completion=``.

A transport is made in the calling process and reaches the worker processes with the engine's
settings (inherited by fork), so it holds no sockets: ``setup()`` makes what a process needs.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Transport"]


class Transport(Protocol):
    """Sends one attempt of a request (retries, rate limits and records are not its job)."""

    def setup(self) -> None:
        """Make this process ready to send requests and to read answers.

        Idempotent. Called in the calling process before a batch starts (before worker
        processes are forked, so what it pays there is paid once) and in every worker process.
        """
        ...

    def complete(self, request: dict[str, Any], *, timeout: float) -> Any:
        """Send ``request`` once and return the response (a litellm ``ModelResponse``).

        ``timeout`` (seconds, or an ``httpx.Timeout``) bounds the attempt. The transport does
        not retry and does not modify ``request``. Every failure is raised as an
        ``LLMAPIClientError`` subclass (translated from the transport's own exceptions).
        """
        ...
