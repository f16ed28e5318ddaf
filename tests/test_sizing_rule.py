"""The README's rule for ``processes=None``, observed from the processes that answer.

    "Default: none for batches under 500 requests or limits one process serves; otherwise one
    per ~150 requests/s of the limit, up to one per core."

Each answer carries the pid of the process that made the call: the test process itself when the
batch runs on threads, else one pid per worker process.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from llm_api_client import APIClient
from tests.fakes import chat, make_response

CORES = 4


class PidCompletion:
    """Answers with the pid of the process that called it."""

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        return make_response(model, str(os.getpid()))


def answering_processes(rpm: int | None, requests: Any) -> set[int]:
    with APIClient(rpm, None, completion=PidCompletion()) as client:
        results = list(client.stream(requests))
    assert all(r.ok for r in results)
    return {int(r.response.choices[0].message.content) for r in results}


@pytest.mark.parametrize(
    ("rpm", "batch", "workers"),
    [
        pytest.param(60_000, 499, 0, id="under-500-requests"),
        pytest.param(9_000, 500, 0, id="150-per-second-one-process-serves"),
        pytest.param(18_000, 500, 2, id="300-per-second-two"),
        pytest.param(60_000, 500, CORES, id="1000-per-second-capped-at-the-cores"),
        pytest.param(None, 500, CORES, id="unlimited-one-per-core"),
    ],
)
def test_default_processes_follow_the_documented_rule(monkeypatch, rpm, batch, workers):
    monkeypatch.setattr(os, "cpu_count", lambda: CORES)

    pids = answering_processes(rpm, [chat(f"q{i}") for i in range(batch)])

    if workers == 0:
        assert pids == {os.getpid()}  # threads of this process
    else:
        assert len(pids) == workers and os.getpid() not in pids


def test_a_batch_of_unknown_size_is_sized_by_the_limit_alone(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: CORES)

    pids = answering_processes(18_000, (chat(f"q{i}") for i in range(50)))

    assert len(pids) == 2 and os.getpid() not in pids
