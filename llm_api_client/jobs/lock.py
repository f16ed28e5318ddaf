"""One writer per output: a lock file beside it, held for the whole run.

Two runs appending to one output would interleave rows, and the second one's resume step
rewrites the file under the first. ``OutputLock`` takes ``<output>.lock`` with ``filelock``
without waiting: a second run on the same output fails at once with ``OutputBusyError``. The
lock is an ``flock`` on an open file, so the kernel releases it when its holder exits or is
killed; the empty ``.lock`` file left behind is harmless and is reused by the next run.

    with OutputLock("results.jsonl"):
        ...  # compact, append, publish the failures file
"""

from __future__ import annotations

import os

from filelock import FileLock, Timeout

__all__ = ["OutputBusyError", "OutputLock", "lock_path"]


class OutputBusyError(Exception):
    """Another live process holds the output's lock."""


def lock_path(output: str | os.PathLike[str]) -> str:
    return f"{os.fspath(output)}.lock"


class OutputLock:
    """The output's lock, taken on ``__enter__`` without waiting, released on ``__exit__``."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = os.fspath(output)
        self.path = lock_path(output)
        self._lock = FileLock(self.path, timeout=0)

    def __enter__(self) -> OutputLock:
        try:
            self._lock.acquire()
        except Timeout:
            raise OutputBusyError(
                f"another llm-api-client run is writing {self.output} (it holds {self.path}); "
                "wait for it to finish, or write to another --output"
            ) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"OutputLock({self.path!r}, held={self._lock.is_locked})"
