"""The aiohttp application: OpenAI's chat, embeddings and models endpoints, /stats and /reset.

One request's path through ``chat_completions`` (``embeddings`` takes the same one)::

    parse ─ 400 invalid_request_error
      │
    count prompt tokens ─ 400 context_length_exceeded (prompt + max output > context window)
      │
    admit 1 request + (prompt + n * max output) tokens ─ 429 rate_limit_exceeded
      │                        (an embedding costs its input tokens)
    fault? ─ hang (until the client leaves or the server stops)
      │
    sleep(latency ± jitter)
      │
    fault? ─ drop (close, no answer) │ fail (status + OpenAI error body)
      │
    200 chat.completion with usage   │ stream: one chunk per token, stream_token_delay_ms apart

Everything runs on one event loop, so the limiter and the counters need no locks.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from llm_api_client.simulator import responses, streaming, tokens
from llm_api_client.simulator.chat import BadRequest, ChatRequest, parse_chat
from llm_api_client.simulator.config import SimulatorConfig
from llm_api_client.simulator.embeddings import (
    MAX_INPUT_TOKENS,
    EmbeddingRequest,
    embedding_for,
    encode,
    input_tokens,
    parse_embeddings,
)
from llm_api_client.simulator.faults import DROP, HANG, Fault, FaultInjector
from llm_api_client.simulator.limits import REQUESTS, Admission, WindowLimiter
from llm_api_client.simulator.stats import CHAT, CHAT_STREAM, EMBEDDINGS, Stats

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Long prompts are the point of context-window tests; aiohttp's default cap is 1 MiB.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Room for bursts of many simultaneous connections (benchmarks open hundreds).
LISTEN_BACKLOG = 2048
# Stopping waits this long for handlers still running; hung ones are released before it.
SHUTDOWN_TIMEOUT_SECONDS = 2.0


@dataclass
class _Call:
    """One request being handled: the endpoint its stats go to, the headers of its answer."""

    endpoint: str
    headers: dict[str, str]


class SimulatorServer:
    """The simulated provider; ``start`` and ``stop`` run on the event loop that serves it.

    ``clock`` times the rate limits and the stats; ``sleep`` every wait (latency, token delays).
    """

    def __init__(
        self, config: SimulatorConfig, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.config = config
        self._clock = clock
        self._sleep = sleep
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
        app.router.add_post("/v1/embeddings", self.embeddings)
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
        return await self._counted(self._chat(request))

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._counted(self._embeddings(request))

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

    async def _counted(self, handling: Awaitable[web.StreamResponse]) -> web.StreamResponse:
        stats = self.stats
        stats.enter()
        try:
            return await handling
        finally:
            stats.leave()

    # ---- one chat completion ---------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        call = _Call(CHAT, self._base_headers())
        if not self._authorized(request):
            return self._unauthorized(call)
        try:
            chat = parse_chat(await _read_json(request))
        except ValueError as exc:  # BadRequest, or JSON that does not parse
            return self._invalid(exc, call)
        if chat.stream:
            call.endpoint = CHAT_STREAM
        self.stats.on_received(chat.key, call.endpoint)
        prompt = tokens.count_prompt(chat.model, chat.messages, chat.tools)
        window = self.config.context_window
        if window is not None and prompt + (chat.max_output or 0) > window:
            self.stats.on_error("context_length_exceeded", call.endpoint)
            return responses.context_length_exceeded(window, prompt, chat.max_output, call.headers)
        cost = prompt + chat.n * (chat.max_output or self.config.default_max_output_tokens)
        instead = await self._admit_and_wait(request, call, chat.model, chat.text, cost)
        if instead is not None:
            return instead
        return await self._reply(request, chat, prompt, call)

    async def _reply(
        self, request: web.Request, chat: ChatRequest, prompt: int, call: _Call
    ) -> web.StreamResponse:
        answer = self._answer(chat, prompt, call)
        if chat.stream:
            return await self._stream(request, answer, chat.include_usage, call)
        self.stats.on_answered(prompt, answer.completion_tokens, call.endpoint)
        return responses.body_response(200, responses.chat_completion_body(answer), call.headers)

    def _answer(self, chat: ChatRequest, prompt: int, call: _Call) -> responses.Answer:
        length = self.config.completion_tokens
        per_choice = min(chat.max_output or length, length)
        return responses.Answer(
            completion_id=f"chatcmpl-{call.headers['x-request-id'][4:]}",
            model=chat.model,
            content=responses.ECHO_PREFIX + chat.text[: responses.ECHO_CHARS],
            n=chat.n,
            tokens=per_choice,
            # cut short by max_tokens, as OpenAI reports it
            finish_reason="length" if per_choice < length else "stop",
            prompt_tokens=prompt,
        )

    async def _stream(
        self, request: web.Request, answer: responses.Answer, include_usage: bool, call: _Call
    ) -> web.StreamResponse:
        """Send the answer's chunks one token delay apart; count it answered once all are sent."""
        response = web.StreamResponse(headers={**call.headers, **streaming.HEADERS})
        delay = self.config.stream_token_delay_ms / 1000.0
        try:
            await response.prepare(request)
            for position, data in enumerate(streaming.events(answer, include_usage)):
                if position and delay:
                    await self._sleep(delay)
                if data:
                    await response.write(data)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError) as exc:
            # The client left mid-stream: aiohttp cancels the handler, or, when a write comes
            # first, the write finds the connection closed (re-raising that would only log it).
            self.stats.on_error("stream_aborted", call.endpoint)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return response
        self.stats.on_answered(answer.prompt_tokens, answer.completion_tokens, call.endpoint)
        return response

    # ---- one embeddings request ------------------------------------------------------------

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        call = _Call(EMBEDDINGS, self._base_headers())
        if not self._authorized(request):
            return self._unauthorized(call)
        try:
            embed = parse_embeddings(await _read_json(request), self.config.embedding_dimensions)
        except ValueError as exc:
            return self._invalid(exc, call)
        self.stats.on_received(embed.key, call.endpoint)
        counts = [input_tokens(embed.model, item) for item in embed.inputs]
        if max(counts) > MAX_INPUT_TOKENS:
            self.stats.on_error("context_length_exceeded", call.endpoint)
            return responses.input_too_long(MAX_INPUT_TOKENS, max(counts), call.headers)
        prompt = sum(counts)
        instead = await self._admit_and_wait(request, call, embed.model, embed.text, prompt)
        if instead is not None:
            return instead
        self.stats.on_answered(prompt, 0, call.endpoint)
        body = responses.embedding_list(embed.model, _vectors(embed), prompt)
        return responses.json_response(200, body, call.headers)

    # ---- between a valid request and its answer --------------------------------------------

    async def _admit_and_wait(
        self, request: web.Request, call: _Call, model: str, text: str, cost: int
    ) -> web.StreamResponse | None:
        """Rate limits, faults and latency: the response to send instead of an answer, or None."""
        verdict = self.limiter.admit(cost)
        call.headers.update(self.limiter.headers())
        if not verdict.admitted:
            return self._rate_limited(verdict, model, cost, call)
        self.stats.on_admitted(self._clock(), cost, call.endpoint)
        fault = self.faults.choose(text)
        if fault is not None and fault.kind == HANG:
            self.stats.on_error(HANG, call.endpoint)
            await self._wait_until_stopping()
            return self._drop(request)
        delay = self.faults.latency()
        if delay > 0:
            await self._sleep(delay)
        return None if fault is None else self._fault(request, fault, call)

    def _fault(self, request: web.Request, fault: Fault, call: _Call) -> web.StreamResponse:
        self.stats.on_error(fault.stats_key, call.endpoint)
        if fault.kind == DROP:
            return self._drop(request)
        return responses.status_error(fault.status, call.headers)

    def _rate_limited(self, verdict: Admission, model: str, cost: int, call: _Call) -> web.Response:
        self.stats.on_rate_limited(verdict.limited_by, call.endpoint)
        per_minute = self.limiter.buckets[verdict.limited_by].per_minute
        requested = 1 if verdict.limited_by == REQUESTS else cost
        return responses.rate_limited(verdict, model, per_minute, requested, call.headers)

    def _authorized(self, request: web.Request) -> bool:
        expected = self.config.api_key
        if expected is None:
            return True
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), expected.encode())

    def _unauthorized(self, call: _Call) -> web.Response:
        self.stats.on_received("<unauthorized>", call.endpoint)
        self.stats.on_error("invalid_api_key", call.endpoint)
        return responses.status_error(401, call.headers)

    def _invalid(self, exc: ValueError, call: _Call) -> web.Response:
        self.stats.on_received("<invalid>", call.endpoint)
        self.stats.on_error("invalid_request", call.endpoint)
        if isinstance(exc, BadRequest):
            return responses.invalid_request(exc.message, exc.param, call.headers)
        return responses.invalid_request(
            f"Could not parse the JSON body: {exc}", None, call.headers
        )

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


async def _read_json(request: web.Request) -> Any:
    return json.loads(await request.read())


def _vectors(embed: EmbeddingRequest) -> list[Any]:
    return [
        encode(embedding_for(item, embed.dimensions), embed.encoding_format)
        for item in embed.inputs
    ]


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
