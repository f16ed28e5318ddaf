"""Stop sending with a key the provider keeps refusing (401 or 403), in the coordinator.

A wrong key on a 10,000-row batch would otherwise draw 10,000 refusals. Requests are grouped
by the credential they carry: a salted SHA-256 of their ``api_key`` (none: the provider's
environment variable), ``api_base`` and provider. The salt is drawn per process and the
fingerprint lives only in memory: the key itself is never stored, logged or compared anywhere
else.

- A key not yet accepted by the provider is *on probation*: at most ``probation`` of its
  requests are in flight (the coordinator holds the next one back until an answer comes).
- Any answer that is not a refusal (a success, a 400, a 429, a 5xx: the provider got past the
  key) accepts it for the client's life; from then on nothing is held.
- ``failures_to_stop`` refusals in a row stop the key for the rest of the batch: its remaining
  requests fail at once with the same error type, unsent (``sent=False``, no attempts).

A stopped key is tried again in the next batch (the user may have fixed the environment).

    guard = KeyGuard()
    guard.new_batch()
    if guard.must_wait(raw): ...                    # hold it back: the key is on probation
    if (error := guard.refusal(index, request)): ...   # fail it unsent: the key was stopped
    guard.sent(index, request); ...; guard.settled(outcome)
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llm_api_client._constants import AUTH_FAILURES_TO_STOP, AUTH_PROBATION_IN_FLIGHT
from llm_api_client.errors import (
    APIStatusError,
    AuthenticationError,
    LLMAPIClientError,
    PermissionDeniedError,
)

if TYPE_CHECKING:
    from llm_api_client.engine.messages import Outcome

__all__ = ["AUTH_ERRORS", "AUTH_ERROR_NAMES", "KeyGuard"]

AUTH_ERRORS = (AuthenticationError, PermissionDeniedError)
AUTH_ERROR_NAMES = frozenset(error.__name__ for error in AUTH_ERRORS)  # as UsageRecord.error


class KeyGuard:
    """Per-credential refusals: holds back unproven keys, stops refused ones. Coordinator-only."""

    def __init__(
        self,
        failures_to_stop: int = AUTH_FAILURES_TO_STOP,
        probation: int = AUTH_PROBATION_IN_FLIGHT,
    ) -> None:
        self.failures_to_stop = failures_to_stop
        self.probation = probation
        self._salt = os.urandom(16)
        self._accepted: set[bytes] = set()
        self.new_batch()

    def new_batch(self) -> None:
        """Forget this batch's refusals and stops; keys already accepted stay accepted."""
        self._refusals: Counter[bytes] = Counter()  # in a row, per key
        self._stopped: dict[bytes, APIStatusError] = {}  # key -> the refusal that stopped it
        self._in_flight: Counter[bytes] = Counter()
        self._by_index: dict[int, bytes] = {}

    def fingerprint(self, request: Mapping[str, Any]) -> bytes:
        """A salted hash of where ``request`` goes and with which credential."""
        parts = (request.get("api_key"), request.get("api_base"), _provider(request))
        text = "\0".join("" if part is None else str(part) for part in parts)
        return hashlib.sha256(self._salt + text.encode()).digest()

    def must_wait(self, request: object) -> bool:
        """Whether ``request``'s key is on probation with its quota of requests in flight."""
        if not isinstance(request, Mapping):
            return False
        key = self.fingerprint(request)
        if key in self._accepted or key in self._stopped:
            return False
        return self._in_flight[key] >= self.probation

    def refusal(self, index: int, request: Mapping[str, Any]) -> LLMAPIClientError | None:
        """The error to fail ``request`` with, unsent, when its key was stopped; else None."""
        cause = self._stopped.get(self.fingerprint(request))
        if cause is None:
            return None
        message = (
            f"not sent: the provider refused this request's API key {self.failures_to_stop} "
            f"times in a row ({cause.status_code}: {type(cause).__name__}); check the key "
            "and run the batch again"
        )
        return type(cause)(message, index=index, status_code=cause.status_code, sent=False)

    def sent(self, index: int, request: Mapping[str, Any]) -> None:
        """``request`` went to a worker (again, after a crash: counted once)."""
        if index not in self._by_index:
            key = self._by_index[index] = self.fingerprint(request)
            self._in_flight[key] += 1

    def settled(self, outcome: Outcome) -> None:
        """Learn from a finished request: a refusal counts, any other answer accepts the key."""
        key = self._by_index.pop(outcome.index, None)
        if key is None:
            return
        self._in_flight[key] -= 1
        error = outcome.error
        if isinstance(error, AUTH_ERRORS):
            self._refusals[key] += 1
            if self._refusals[key] >= self.failures_to_stop:
                self._stopped.setdefault(key, error)
        elif error is None or isinstance(error, APIStatusError):
            self._refusals[key] = 0
            self._accepted.add(key)

    def __repr__(self) -> str:
        return (
            f"<KeyGuard accepted={len(self._accepted)} stopped={len(self._stopped)} "
            f"in_flight={sum(self._in_flight.values())}>"
        )


def _provider(request: Mapping[str, Any]) -> str | None:
    """Where the request goes (litellm's routing): which environment variable holds the key."""
    from llm_api_client.providers.models import provider_of  # litellm: not for the CLI's help

    model = request.get("model")
    return provider_of(model, request) if isinstance(model, str) else None
