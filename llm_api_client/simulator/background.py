"""``Simulator``: the server running in the background, in a thread or in its own process.

A thread is cheap to start and lets a test inject the clock. A process does not share the
caller's GIL, which benchmarks need: a client saturating its own process would otherwise slow
the provider it measures. Both ways, ``stats()`` and ``reset()`` go over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from types import TracebackType
from typing import Any, Protocol

from llm_api_client.errors import ConfigurationError
from llm_api_client.simulator.config import SimulatorConfig
from llm_api_client.simulator.server import Clock, SimulatorServer, Sleep

# Starting a process imports aiohttp and tiktoken and loads the encodings: about a second.
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 10.0


class _Backend(Protocol):
    pid: int | None

    def start(self) -> int: ...
    def stop(self) -> None: ...


class Simulator:
    """An OpenAI-compatible provider on 127.0.0.1, for tests, benchmarks and the demo.

    Use it as a context manager; keyword arguments are ``SimulatorConfig`` fields::

        with Simulator(rpm=600, tpm=100_000, latency_ms=50) as sim:
            litellm.completion(model="openai/gpt-4o-mini", api_base=sim.base_url,
                               api_key="x", max_retries=0, messages=[...])
            assert sim.stats()["admitted"] == 1

    ``process=True`` serves from a separate process (its own GIL). ``clock`` (thread mode only)
    replaces ``time.monotonic`` for the rate limits and the stats, so tests can move time;
    ``sleep`` (thread mode only, a coroutine function) replaces ``asyncio.sleep`` for the
    latency and the token delays of streams, so tests can see every wait without waiting.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        process: bool = False,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        **fields: Any,
    ) -> None:
        self.config = replace(config or SimulatorConfig(), **fields)
        if process and (clock is not None or sleep is not None):
            raise ConfigurationError(
                "simulator: a clock or a sleep can only be injected in thread mode"
            )
        self.process = process
        self._clock = clock
        self._sleep = sleep
        self._backend: _Backend | None = None
        self.port: int | None = None

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def url(self) -> str:
        """The server's root, ``http://127.0.0.1:<port>``, where ``/stats`` and ``/reset`` live."""
        if self.port is None:
            raise RuntimeError("the simulator is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``api_base``: ``http://127.0.0.1:<port>/v1``."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        """The id of the process serving (this one in thread mode); None when stopped."""
        return None if self._backend is None else self._backend.pid

    def start(self) -> Simulator:
        """Start serving; return once the port accepts connections."""
        if self._backend is not None:
            raise RuntimeError("the simulator is already running")
        backend: _Backend = (
            _ProcessBackend(self.config)
            if self.process
            else _ThreadBackend(
                self.config, self._clock or time.monotonic, self._sleep or asyncio.sleep
            )
        )
        self.port = backend.start()
        self._backend = backend
        return self

    def stop(self) -> None:
        """Stop serving: hung requests are released, connections closed. Idempotent."""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.stop()
        self.port = None

    def stats(self) -> dict[str, Any]:
        """What the provider has seen since the start or the last ``reset()`` (``GET /stats``)."""
        return self._call("GET", "/stats")

    def reset(self) -> None:
        """Clear the stats, refill the rate-limit buckets, replay the seeded faults."""
        self._call("POST", "/reset")

    def _call(self, method: str, path: str) -> dict[str, Any]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT_SECONDS)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"simulator {method} {path}: HTTP {response.status}")
        result: dict[str, Any] = json.loads(body)
        return result

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.base_url}" if self.port is not None else "stopped"
        mode = "process" if self.process else "thread"
        return f"Simulator({where}, {mode}, rpm={self.config.rpm}, tpm={self.config.tpm})"


class _ThreadBackend:
    """The server on its own event loop in a daemon thread of this process."""

    def __init__(self, config: SimulatorConfig, clock: Clock, sleep: Sleep) -> None:
        self._server = SimulatorServer(config, clock, sleep)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="llm-api-simulator", daemon=True)
        self.pid: int | None = os.getpid()

    def start(self) -> int:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        assert self._server.port is not None
        return self._server.port

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT_SECONDS)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), which re-raises it
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self._server.start()
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await self._server.stop()


class _ProcessBackend:
    """The server in a child Python process (``python -m llm_api_client.simulator.child``).

    A fresh interpreter rather than ``multiprocessing``: it never re-imports the caller's
    ``__main__`` (scripts without a main guard, stdin, notebooks all work). The config goes in on
    the child's stdin, the port comes back on its stdout, and closing its stdin stops it, which
    also happens when this process dies.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._process: subprocess.Popen[str] | None = None
        self.pid: int | None = None

    def start(self) -> int:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "llm_api_client.simulator.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self._process.pid
        try:
            return self._handshake(self._process)
        except BaseException:
            self.stop()
            raise

    def _handshake(self, process: subprocess.Popen[str]) -> int:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(config_to_json(self._config) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()  # blocks until the child listens or dies
        if not line:
            code = process.wait(START_TIMEOUT_SECONDS)
            raise RuntimeError(f"the simulator process exited with code {code} before listening")
        return int(json.loads(line)["port"])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            process.stdin.close()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def config_to_json(config: SimulatorConfig) -> str:
    return json.dumps(asdict(config))


def config_from_json(text: str) -> SimulatorConfig:
    fields = json.loads(text)
    fields["models"] = tuple(fields["models"])
    return SimulatorConfig(**fields)
