"""How worker processes start: forked from the coordinator, or spawned from a clean interpreter.

``fork`` is the fast way where it is safe: a worker inherits the warmed-up litellm and starts
in milliseconds. It is the default on Linux only. Windows has no fork, and on macOS a forked
child of a process that has started threads (ours always has: HTTP clients, the simulator) may
crash in system frameworks, which is why Python made ``spawn`` macOS's default; there, and
wherever fork is missing, workers are spawned: each imports the library and warms litellm up
itself (a few seconds, paid once per client, in parallel), and reaches the shared-memory rate
limiter by its name (see ``ratelimit.shared``).

The choice, first that is set: ``APIClient(start_method=...)``, the environment variable
``LLM_API_CLIENT_START_METHOD``, the platform's default. Under ``spawn`` and ``forkserver``
everything a worker gets is pickled: a ``completion=`` function must be importable (defined at
a module's top level), and a script must guard its entry point with
``if __name__ == "__main__":``, since each worker imports the script's module again.
"""

from __future__ import annotations

import os
import sys

import multiprocess

from llm_api_client.errors import ConfigurationError

__all__ = ["ENV_VAR", "choose_start_method"]

ENV_VAR = "LLM_API_CLIENT_START_METHOD"


def choose_start_method(requested: str | None = None, *, platform: str = sys.platform) -> str:
    """The start method for worker processes: ``requested``, else the env var, else the default.

    Raises ``ConfigurationError`` for a method this platform does not have.
    """
    method = requested or os.environ.get(ENV_VAR) or _platform_default(platform)
    available = multiprocess.get_all_start_methods()
    if method not in available:
        source = "start_method" if requested else ENV_VAR
        raise ConfigurationError(f"{source} must be one of {available}, not {method!r}")
    return method


def _platform_default(platform: str) -> str:
    return "fork" if platform.startswith("linux") else "spawn"
