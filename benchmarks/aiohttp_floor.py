"""The floor for CPU per request: a raw aiohttp client posting the same chat completions.

No library, no litellm: each request's JSON body is encoded, posted on one kept aiohttp session
(an event loop in the calling thread, at most ``concurrency`` requests in flight) and its answer
parsed with ``json.loads``. What any client must spend to send a request and read its answer,
so the lean transport's CPU is judged against it (``run.py``'s throughput table and
``lean_transport.py``). Standard library and aiohttp only: ``_variant.py`` imports this.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import aiohttp


class Reply:
    """The part of an answer ``_harness.echoes`` reads, as attributes like a ModelResponse's."""

    def __init__(self, content: Any) -> None:
        self.choices = [SimpleNamespace(message=SimpleNamespace(content=content))]


def wire(request: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers of a harness request (``openai/`` model, ``api_base``, key)."""
    body = {k: v for k, v in request.items() if k not in ("api_base", "api_key")}
    body["model"] = body["model"].removeprefix("openai/")
    headers = {"Authorization": f"Bearer {request['api_key']}"}
    headers["Content-Type"] = "application/json"
    return request["api_base"].rstrip("/") + "/chat/completions", json.dumps(body).encode(), headers


class Floor:
    """``floor(batch) -> replies`` (None for a failed request) on one session kept across
    batches, on an event loop of its own run from the calling thread."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.loop = asyncio.new_event_loop()
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, loop=self.loop)
        self.session = aiohttp.ClientSession(connector=connector, loop=self.loop)

    def __call__(self, requests: list[dict[str, Any]]) -> list[Reply | None]:
        return self.loop.run_until_complete(self._batch(requests))

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()

    async def _batch(self, requests: list[dict[str, Any]]) -> list[Reply | None]:
        gate = asyncio.Semaphore(self.concurrency)
        return list(await asyncio.gather(*(self._one(gate, r) for r in requests)))

    async def _one(self, gate: asyncio.Semaphore, request: dict[str, Any]) -> Reply | None:
        url, body, headers = wire(request)
        async with gate:
            try:
                async with self.session.post(url, data=body, headers=headers) as response:
                    if response.status != 200:
                        return None
                    answer = json.loads(await response.read())
            except aiohttp.ClientError:
                return None
        return Reply(answer["choices"][0]["message"]["content"])


def floor_runner(phase: dict[str, Any]) -> tuple[Floor, None]:
    """The floor at the phase's concurrency, and no client (it keeps no tracker)."""
    return Floor(phase["concurrency"]), None
