"""A key the provider keeps refusing stops being used: a wrong key costs a few 401s, not a batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_api_client import APIClient
from llm_api_client.engine.keyguard import KeyGuard
from llm_api_client.engine.messages import Outcome
from llm_api_client.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    PermissionDeniedError,
)
from llm_api_client.records import UsageRecord

GOOD, BAD = "sk-good-key-0123456789", "sk-wrong-key-0123456789"


def request(key: str | None = BAD, **extra) -> dict:
    body = {"model": "openai/sim", "messages": [{"role": "user", "content": "hi"}], **extra}
    return body if key is None else {**body, "api_key": key}


def outcome(index: int, error=None) -> Outcome:
    record = UsageRecord(index=index, model="openai/sim", attempts=1)
    return Outcome(index, None if error else object(), error, record)


def refused(index: int, cls=AuthenticationError, status: int = 401) -> Outcome:
    return outcome(index, cls("no", status_code=status))


def send(guard: KeyGuard, index: int, body: dict) -> None:
    assert not guard.must_wait(body)
    assert guard.refusal(index, body) is None
    guard.sent(index, body)


@pytest.mark.parametrize(
    ("cls", "status"), [(AuthenticationError, 401), (PermissionDeniedError, 403)]
)
def test_refusals_in_a_row_stop_the_key_and_its_requests_fail_unsent(cls, status):
    guard = KeyGuard(failures_to_stop=3, probation=8)
    for i in range(3):
        send(guard, i, request())
    guard.settled(refused(0, cls, status))
    guard.settled(refused(1, cls, status))
    assert guard.refusal(9, request()) is None  # two are not enough
    guard.settled(refused(2, cls, status))
    error = guard.refusal(9, request())
    assert type(error) is cls
    assert error.status_code == status and error.sent is False and error.index == 9
    assert BAD not in str(error) and BAD not in repr(guard)
    assert guard.refusal(10, request(GOOD)) is None  # another key is not concerned


def test_a_key_on_probation_has_a_few_requests_in_flight_until_an_answer_accepts_it():
    guard = KeyGuard(failures_to_stop=3, probation=2)
    send(guard, 0, request(GOOD))
    send(guard, 1, request(GOOD))
    assert guard.must_wait(request(GOOD))
    assert not guard.must_wait(request(BAD))  # its own quota
    guard.settled(outcome(0))
    for i in range(2, 20):  # accepted: no limit any more
        send(guard, i, request(GOOD))


@pytest.mark.parametrize("error", [None, BadRequestError("bad", status_code=400)])
def test_any_answer_past_the_key_resets_the_count(error):
    guard = KeyGuard(failures_to_stop=3, probation=50)
    for i in range(5):
        send(guard, i, request())
    guard.settled(refused(0))
    guard.settled(refused(1))
    guard.settled(outcome(2, error))
    guard.settled(refused(3))
    guard.settled(refused(4))
    assert guard.refusal(9, request()) is None


def test_no_answer_neither_accepts_nor_counts():
    guard = KeyGuard(failures_to_stop=3, probation=1)
    send(guard, 0, request())
    guard.settled(outcome(0, APIConnectionError("reset")))
    send(guard, 1, request())
    assert guard.must_wait(request())  # still on probation


def test_a_new_batch_tries_a_stopped_key_again_and_remembers_accepted_ones():
    guard = KeyGuard(failures_to_stop=1, probation=1)
    send(guard, 0, request(BAD))
    send(guard, 1, request(GOOD))
    guard.settled(refused(0))
    guard.settled(outcome(1))
    assert guard.refusal(2, request(BAD)) is not None
    guard.new_batch()
    assert guard.refusal(2, request(BAD)) is None
    send(guard, 3, request(GOOD))
    assert not guard.must_wait(request(GOOD))


def test_the_fingerprint_is_salted_per_guard_and_separates_endpoints():
    one, two = KeyGuard(), KeyGuard()
    assert one.fingerprint(request()) != two.fingerprint(request())
    assert BAD.encode() not in one.fingerprint(request())
    elsewhere = request(api_base="http://other.local/v1")
    assert one.fingerprint(elsewhere) != one.fingerprint(request())


@pytest.mark.slow
def test_a_wrong_key_draws_a_few_401s_then_the_right_key_answers_everything():
    from llm_api_client.simulator import Simulator

    with Simulator(api_key=GOOD, latency_ms=5) as sim:
        rows = [request(BAD, api_base=sim.base_url, max_tokens=5) for _ in range(300)]
        with APIClient(None, None, processes=0) as client:
            results = list(client.stream(rows))
            refusals = sim.stats()["errors"].get("invalid_api_key", 0)
            assert all(isinstance(r.error, AuthenticationError) for r in results)
            assert 1 <= refusals <= 50
            unsent = [r for r in results if r.attempts == 0]
            assert len(unsent) == 300 - refusals
            assert all(r.error.sent is False for r in unsent)
            good = [{**row, "api_key": GOOD} for row in rows]
            assert all(r.ok for r in client.stream(good))
            list(client.stream(rows[:20]))  # a new batch tries the stopped key again
            assert sim.stats()["errors"]["invalid_api_key"] > refusals


def write_rows(path: Path, n: int) -> Path:
    lines = (
        json.dumps({"model": "openai/sim", "messages": [{"role": "user", "content": f"row {i}"}]})
        for i in range(n)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llm_api_client", "run", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.timeout(600)  # two CLI processes; minutes on a loaded 2-core machine
def test_run_with_a_wrong_key_stops_and_a_rerun_with_the_right_key_finishes(tmp_path: Path):
    from llm_api_client.simulator import Simulator

    n = 300
    data, out = write_rows(tmp_path / "in.jsonl", n), tmp_path / "out.jsonl"
    with Simulator(api_key=GOOD) as sim:
        common = [str(data), "-o", str(out), "--api-base", sim.base_url]
        wrong = run_cli(*common, "--api-key", BAD)
        assert wrong.returncode != 0
        assert "authentication failed" in wrong.stderr
        assert "authentication failed" in wrong.stdout  # in the summary too
        assert sim.stats()["errors"]["invalid_api_key"] <= 50
        right = run_cli(*common, "--api-key", GOOD, "--quiet")
        assert right.returncode == 0, right.stderr
        received = sim.stats()["received_by_key"]
    received.pop("<unauthorized>")
    assert len(received) == n and set(received.values()) == {1}
    answered = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(row["error"] is None for row in answered) == n
    for text in (wrong.stdout, wrong.stderr, right.stdout, right.stderr, out.read_text()):
        assert BAD not in text and GOOD not in text
