"""Messages between the coordinator and the workers: small, frozen, picklable dataclasses.

``CallItem`` goes down a worker's task pipe, ``Outcome`` comes back up its result pipe (and a
``WorkerExited`` after the last one). They hold no litellm class except the response object
itself, so a worker of any backend (threads, processes, later Ray actors) can send them.

Both directions travel as ``pickle`` bytes made by the sender (``encode``/``decode``): the
sender learns at once that a value cannot be pickled (a queue's feeder thread would drop it
silently and the batch would wait forever), and the standard pickler is several times faster
than the ``dill`` one ``multiprocess`` queues use for objects.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_api_client.ratelimit.base import Cost

if TYPE_CHECKING:
    from llm_api_client.errors import LLMAPIClientError
    from llm_api_client.records import UsageRecord

__all__ = ["STOP", "CallItem", "Outcome", "WorkerExited", "decode", "encode"]


@dataclass(frozen=True, slots=True)
class CallItem:
    """One request for a worker: the prepared request, its rate-limit cost and retry budget.

    ``model`` and ``provider`` (where the request goes, ``providers.models.provider_of``) are
    resolved once, by the coordinator. ``request`` is left out of the repr: it may hold an
    ``api_key``.
    """

    index: int
    request: dict[str, Any] = field(repr=False)
    cost: Cost
    model: str
    provider: str | None = None
    max_retries: int = 0
    redispatches: int = 0  # how many times a worker died with it in flight


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request came to: the response or the typed error, and its usage record."""

    index: int
    response: Any
    error: LLMAPIClientError | None
    record: UsageRecord

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """The last message a worker sends after a clean shutdown: its pipe carries nothing more."""

    worker_id: int


# Sent down a task pipe instead of an item: finish what you hold, say goodbye, exit.
STOP = b""


def encode(message: object) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> Any:
    return pickle.loads(data)
