"""Where the coordinator sends ``CallItem``s: threads of this process, or worker processes.

Both backends offer the same small surface, so the coordinator's loop does not know which one
runs the calls.
"""

from __future__ import annotations

from typing import Protocol

from llm_api_client.engine.messages import CallItem, Outcome


class Backend(Protocol):
    """Runs items concurrently and hands back their outcomes."""

    @property
    def capacity(self) -> int:
        """How many items may be in flight at once (threads plus a small prefetch)."""
        ...

    def submit(self, item: CallItem) -> None:
        """Start an item; the caller keeps in-flight items below ``capacity``."""
        ...

    def poll(self, timeout: float) -> list[Outcome]:
        """Outcomes finished since the last call, waiting up to ``timeout`` for the first."""
        ...

    def lost(self) -> list[CallItem]:
        """Items whose worker died with them in flight (each reported once)."""
        ...

    def abandon(self) -> None:
        """Give up everything in flight now (timeout, Ctrl-C): nothing more is sent for it.

        Outcomes not yet polled are never polled; calls already on the wire are cut or, where
        they cannot be, finish unseen by the batch (see each backend).
        """
        ...

    def close(self) -> None:
        """Finish and release the workers."""
        ...

    def forget(self) -> None:
        """In a forked child: drop the parent's workers without touching them."""
        ...
