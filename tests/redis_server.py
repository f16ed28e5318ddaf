"""A real ``redis-server`` for the tests: on a unix socket in a temporary directory, no persistence.

``shared_server()`` starts one per test session (stopped at exit); ``RedisServer`` starts a
private one, for tests that kill it (``kill9``) and start it again on the same socket
(``restart``, with its state lost, as after a crash). Tests skip only where the binary or the
``redis`` package is missing (CI installs both).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)


def have_redis() -> bool:
    try:
        import redis  # noqa: F401
    except ImportError:
        return False
    return REDIS_SERVER is not None


needs_redis = pytest.mark.skipif(not have_redis(), reason="redis-server or redis-py not found")


class RedisServer:
    """One ``redis-server`` process on ``socket``; ``url`` is how clients name it."""

    def __init__(self) -> None:
        assert REDIS_SERVER is not None
        self.directory = tempfile.mkdtemp(prefix="llm-api-client-redis-")
        self.socket = os.path.join(self.directory, "redis.sock")
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        assert REDIS_SERVER is not None
        command = [REDIS_SERVER, "--port", "0", "--unixsocket", self.socket,
                   "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                   "--dir", self.directory]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(unix_socket_path=self.socket).ping())
        except redis.ConnectionError:
            return False

    def kill9(self) -> None:
        """SIGKILL: the server dies at once, its state with it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        if os.path.exists(self.socket):
            os.unlink(self.socket)

    def restart(self) -> None:
        """Kill -9, then start again on the same socket, empty."""
        self.kill9()
        self.start()

    def client(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=self.socket, decode_responses=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: RedisServer | None = None
_keys = iter(range(10**9))


def shared_server() -> RedisServer:
    """The session's server, started on first use (skips the test without the binary)."""
    global _shared
    if not have_redis():
        pytest.skip("redis-server or redis-py not found")
    if _shared is None:
        _shared = RedisServer()
        atexit.register(_shared.stop)
    return _shared


def fresh_key() -> str:
    """A key no other test of this session used."""
    return f"test-{os.getpid()}-{next(_keys)}"
