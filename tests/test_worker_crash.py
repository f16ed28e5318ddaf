"""A request that kills every worker process that takes it (a crash in native code, say).

It is sent again once, then fails with ``WorkerCrashedError``; the dead workers are replaced, but
only as many times as the pool has workers while another worker still lives, so a crash loop
shrinks the pool instead of forking forever. Which process answered is in each answer, so the
pool is observed from outside.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from llm_api_client import APIClient
from llm_api_client.errors import WorkerCrashedError
from tests.fakes import chat, last_user_text, make_response

pytestmark = pytest.mark.processes

POISON = "#poison"


class PoisonCompletion:
    """Kills the calling process for a request marked ``#poison``; answers others with its pid.

    Each death leaves a file named after the dying process in ``deaths``.
    """

    def __init__(self, deaths: Path) -> None:
        self.deaths = deaths

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        text = last_user_text(messages)
        if POISON in text:
            (self.deaths / str(os.getpid())).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return make_response(model, f"{os.getpid()}")


def answering_pids(client: APIClient, count: int) -> set[str]:
    """The worker processes that answer a batch of ``count`` harmless requests."""
    responses = client.make_requests([chat(f"q{i}") for i in range(count)])
    assert all(r is not None for r in responses), client.last_errors
    return {r.choices[0].message.content for r in responses}


def poison(client: APIClient, deaths: Path) -> int:
    """Send one poisoned request; return how many workers it killed."""
    before = len(list(deaths.iterdir()))
    [response] = client.make_requests([chat(f"deadly {POISON}")])
    assert response is None
    assert isinstance(client.last_errors[0], WorkerCrashedError)
    return len(list(deaths.iterdir())) - before


def test_a_request_that_kills_every_worker_is_sent_twice_then_fails(tmp_path):
    completion = PoisonCompletion(tmp_path)
    with APIClient(None, None, processes=2, max_workers=2, completion=completion) as client:
        first_pool = answering_pids(client, 20)

        assert poison(client, tmp_path) == 2  # the first worker, then the one it was re-sent to

        second_pool = answering_pids(client, 20)
    dead = {path.name for path in tmp_path.iterdir()}
    assert len(first_pool) == len(second_pool) == 2  # both dead workers were replaced
    assert not dead & second_pool


def test_replacements_stop_at_the_pool_size_while_a_worker_lives(tmp_path):
    completion = PoisonCompletion(tmp_path)
    with APIClient(None, None, processes=2, max_workers=2, completion=completion) as client:
        assert len(answering_pids(client, 20)) == 2  # (an answer also ends the slow start)
        assert poison(client, tmp_path) == 2  # spends both replacements
        assert len(answering_pids(client, 20)) == 2

        # The first death is not replaced (a worker lives); the second leaves none, so one is
        # started to keep the client usable.
        assert poison(client, tmp_path) == 2
        assert len(answering_pids(client, 20)) == 1
