"""Messages between the coordinator and the workers: small, frozen, picklable dataclasses.

Both directions travel as ``pickle`` bytes made by the sender (``encode``/``decode``): the
sender learns at once that a value cannot be pickled (a queue's feeder thread would drop it
silently and the batch would wait forever), and the standard pickler is several times faster
than the ``dill`` one ``multiprocess`` queues use for objects.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from llm_api_client.ratelimit.base import Cost


@dataclass(frozen=True, slots=True)
class CallItem:
    """One request for a worker: the prepared request, its rate-limit cost and retry budget.

    ``provider`` is where the request goes, resolved once by the coordinator
    (``providers.models.provider_of``).
    """

    index: int
    request: dict[str, Any]
    cost: Cost
    max_retries: int
    generation: int  # the batch it belongs to; results of an abandoned batch are discarded
    redispatches: int = 0  # how many times a worker died with it in flight
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """The last message a worker sends after a clean shutdown: its queue holds nothing more."""

    worker_id: int


# Sent down a task pipe instead of an item: finish what you hold, say goodbye, exit.
STOP = b""


def encode(message: object) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> Any:
    return pickle.loads(data)
