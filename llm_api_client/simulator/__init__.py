"""An OpenAI-compatible provider to run locally: rate limits, faults and stats on demand.

The only provider these machines can reach, and a strict one: per-minute limits are enforced over
one-second windows with OpenAI's 429 bodies and headers, and faults (latency, error statuses,
dropped and hung connections, context-window overflows) come by chance or by marker.

    with Simulator(rpm=60, tpm=10_000) as sim:
        ...  # litellm.completion(model="openai/gpt-4o-mini", api_base=sim.base_url, ...)

Besides chat completions it streams (server-sent events, a delay per token) and embeds
(``/v1/embeddings``, deterministic vectors: ``embedding_for(text, dimensions)`` recomputes them).

Modules: ``limits`` (the windowed buckets), ``faults``, ``stats``, ``tokens`` (prompt counting),
``chat`` (request parsing), ``embeddings`` (request parsing and vectors), ``responses`` (OpenAI's
JSON shapes), ``streaming`` (a streamed answer's events), ``server`` (the aiohttp app),
``background`` (``Simulator``: the server in a thread or a process).
CLI: ``llm-api-client simulate --port 8000 --rpm 60``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llm_api_client.simulator.config import SimulatorConfig

if TYPE_CHECKING:
    from llm_api_client.simulator.background import Simulator
    from llm_api_client.simulator.embeddings import embedding_for

__all__ = ["Simulator", "SimulatorConfig", "embedding_for"]


def __getattr__(name: str) -> Any:
    # aiohttp (about half a second) and tiktoken load only when a simulator is wanted, not for
    # the CLI's help.
    if name == "Simulator":
        from llm_api_client.simulator.background import Simulator

        return Simulator
    if name == "embedding_for":
        from llm_api_client.simulator.embeddings import embedding_for

        return embedding_for
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
