"""The aiohttp application: OpenAI's chat completions and models endpoints, plus /stats and /reset.

One request's path through ``chat_completions``::

    parse ─ 400 invalid_request_error
      │
    count prompt tokens ─ 400 context_length_exceeded (prompt + max output > context window)
      │
    admit 1 request + (prompt + n * max output) tokens ─ 429 rate_limit_exceeded
      │
    fault? ─ hang (until the client leaves or the server stops)
      │
    sleep(latency ± jitter)
      │
    fault? ─ drop (close, no answer) │ fail (status + OpenAI error body)
      │
    200 chat.completion with usage

Everything runs on one event loop, so the limiter and the counters need no locks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import Callable

from aiohttp import web

from llm_api_client.simulator import responses, tokens
from llm_api_client.simulator.chat import BadRequest, ChatRequest, parse_chat
from llm_api_client.simulator.config import SimulatorConfig
from llm_api_client.simulator.faults import DROP, HANG, Fault, FaultInjector
from llm_api_client.simulator.limits import REQUESTS, Admission, WindowLimiter
from llm_api_client.simulator.stats import Stats

Clock = Callable[[], float]

# Long prompts are the point of context-window tests; aiohttp's default cap is 1 MiB.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Room for bursts of many simultaneous connections (benchmarks open hundreds).
LISTEN_BACKLOG = 2048
# Stopping waits this long for handlers still running; hung ones are released before it.
SHUTDOWN_TIMEOUT_SECONDS = 2.0


class SimulatorServer:
    """The simulated provider; ``start`` and ``stop`` run on the event loop that serves it."""

    def __init__(self, config: SimulatorConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self.limiter = WindowLimiter(config.rpm, config.tpm, config.window_seconds, clock)
        self.faults = FaultInjector(
            fail_rate=config.fail_rate,
            drop_rate=config.drop_rate,
            hang_rate=config.hang_rate,
            fail_status=config.fail_status,
            latency_ms=config.latency_ms,
            jitter_ms=config.jitter_ms,
            seed=config.seed,
        )
        self.stats = Stats(clock())
        self.port: int | None = None
        self._created = int(time.time())
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(6)
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/models/{model}", self.model)
        app.router.add_get("/stats", self.get_stats)
        app.router.add_post("/reset", self.reset)
        return app

    async def start(self) -> int:
        """Listen on the configured host and port (0: a free one); return the bound port."""
        tokens.preload()
        self._stopping = asyncio.Event()
        # handler_cancellation: a hung request ends when its client gives up.
        runner = web.AppRunner(
            self.make_app(),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.config.host, self.config.port, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except BaseException:
            await self.stop()
            raise
        self.port = int(runner.addresses[0][1])
        self.stats.reset(self._clock())  # "per second since start" counts from here
        return self.port

    async def stop(self) -> None:
        """Release hung requests, close every connection and stop listening."""
        if self._stopping is not None:
            self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ---- endpoints -------------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.enter()
        try:
            return await self._chat(request)
        finally:
            stats.leave()

    async def models(self, request: web.Request) -> web.Response:
        body = responses.model_list(self.config.models, self._created)
        return responses.json_response(200, body, self._base_headers())

    async def model(self, request: web.Request) -> web.Response:
        entry = responses.model_entry(request.match_info["model"], self._created)
        return responses.json_response(200, entry, self._base_headers())

    async def get_stats(self, request: web.Request) -> web.Response:
        return responses.json_response(200, self.stats.snapshot(self._clock()), {})

    async def reset(self, request: web.Request) -> web.Response:
        """Clear the counters, refill the buckets and replay the seeded fault sequence."""
        self.stats.reset(self._clock())
        self.limiter.refill_all()
        self.faults.reseed()
        return responses.json_response(200, {"reset": True}, {})

    # ---- one chat completion ---------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        headers = self._base_headers()
        try:
            chat = parse_chat(json.loads(await request.read()))
        except ValueError as exc:  # BadRequest, or JSON that does not parse
            return self._invalid(exc, headers)
        self.stats.on_received(chat.key)
        prompt = tokens.count_prompt(chat.model, chat.messages, chat.tools)
        window = self.config.context_window
        if window is not None and prompt + (chat.max_output or 0) > window:
            self.stats.on_error("context_length_exceeded")
            return responses.context_length_exceeded(window, prompt, chat.max_output, headers)
        cost = prompt + chat.n * (chat.max_output or self.config.default_max_output_tokens)
        verdict = self.limiter.admit(cost)
        headers.update(self.limiter.headers())
        if not verdict.admitted:
            return self._rate_limited(verdict, chat.model, cost, headers)
        self.stats.on_admitted(self._clock(), cost)
        return await self._answer(request, chat, prompt, headers)

    async def _answer(
        self, request: web.Request, chat: ChatRequest, prompt: int, headers: dict[str, str]
    ) -> web.StreamResponse:
        fault = self.faults.choose(chat.text)
        if fault is not None and fault.kind == HANG:
            self.stats.on_error(HANG)
            await self._wait_until_stopping()
            return self._drop(request)
        delay = self.faults.latency()
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None:
            return self._fault(request, fault, headers)
        return self._completion(chat, prompt, headers)

    def _completion(self, chat: ChatRequest, prompt: int, headers: dict[str, str]) -> web.Response:
        length = self.config.completion_tokens
        per_choice = min(chat.max_output or length, length)
        limited = per_choice < length  # cut short by max_tokens, as OpenAI reports it
        completion = chat.n * per_choice
        self.stats.on_answered(prompt, completion)
        body = responses.chat_completion(
            completion_id=f"chatcmpl-{headers['x-request-id'][4:]}",
            model=chat.model,
            content=responses.ECHO_PREFIX + chat.text[: responses.ECHO_CHARS],
            n=chat.n,
            finish_reason="length" if limited else "stop",
            prompt_tokens=prompt,
            completion_tokens=completion,
        )
        return responses.json_response(200, body, headers)

    def _fault(
        self, request: web.Request, fault: Fault, headers: dict[str, str]
    ) -> web.StreamResponse:
        self.stats.on_error(fault.stats_key)
        if fault.kind == DROP:
            return self._drop(request)
        return responses.status_error(fault.status, headers)

    def _rate_limited(
        self, verdict: Admission, model: str, cost: int, headers: dict[str, str]
    ) -> web.Response:
        self.stats.on_rate_limited(verdict.limited_by)
        per_minute = self.limiter.buckets[verdict.limited_by].per_minute
        requested = 1 if verdict.limited_by == REQUESTS else cost
        return responses.rate_limited(verdict, model, per_minute, requested, headers)

    def _invalid(self, exc: ValueError, headers: dict[str, str]) -> web.Response:
        self.stats.on_received("<invalid>")
        self.stats.on_error("invalid_request")
        if isinstance(exc, BadRequest):
            return responses.invalid_request(exc.message, exc.param, headers)
        return responses.invalid_request(f"Could not parse the JSON body: {exc}", None, headers)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        """Close the connection without an answer (the client sees a disconnect)."""
        transport = request.transport
        if transport is not None:
            transport.close()
        return web.Response(status=204)

    async def _wait_until_stopping(self) -> None:
        # Cancelled (and so ended) when the client disconnects: handler_cancellation is on.
        assert self._stopping is not None, "start() creates the stopping event"
        await self._stopping.wait()

    def _base_headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_{self._id_prefix}{next(self._ids):08x}"}


async def serve_until(
    config: SimulatorConfig, stop: asyncio.Event, ready: Callable[[int], None]
) -> None:
    """Run a simulator on the current loop until ``stop`` is set; call ``ready(port)`` once up."""
    server = SimulatorServer(config)
    await server.start()
    try:
        assert server.port is not None
        ready(server.port)
        await stop.wait()
    finally:
        await server.stop()
