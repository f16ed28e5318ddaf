"""The response cache: a request answered before is answered from the file, never sent again."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from llm_api_client import APIClient
from llm_api_client.cache import ResponseCache, cache_key, open_cache
from llm_api_client.errors import ConfigurationError
from tests.fakes import FakeCompletion, chat, litellm

BASE = chat("hello", max_tokens=20, api_base="http://sim.local/v1")


@pytest.mark.parametrize(
    "change",
    [
        {"api_key": "sk-other-key-123456"},
        {"organization": "org-2"},
        {"timeout": 3},
        {"num_retries": 4},
        {"extra_headers": {"Authorization": "Bearer sk-xyz123456"}},
        {"api_base": "http://user:secret@sim.local/v1"},
        {"api_base": "http://sim.local/v1/?api-key=abc"},
        {"aws_secret_access_key": "s3cr3t"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_credentials_and_transport_settings_are_not_part_of_the_key(change):
    assert cache_key({**BASE, **change}) == cache_key(BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "hello!"}]},
        {"model": "gpt-4o"},
        {"max_tokens": 21},
        {"temperature": 0.5},
        {"api_base": "http://other.local/v1"},
        {"api_base": "http://sim.local/v2"},
        {"extra_headers": {"anthropic-beta": "tools"}},
        {"user": "someone"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_what_is_asked_and_where_is_part_of_the_key(change):
    assert cache_key({**BASE, **change}) != cache_key(BASE)


def requests(n: int, **extra) -> list[dict]:
    return [chat(f"q{i}", max_tokens=20, **extra) for i in range(n)]


def client(cache, rpm: int | None = None, **options) -> APIClient:
    return APIClient(rpm, None, completion=FakeCompletion(), cache=cache, **options)


@pytest.mark.parametrize("processes", [0, 2])
def test_a_second_batch_is_answered_from_the_cache(tmp_path: Path, processes: int):
    path = tmp_path / "cache.sqlite"
    with client(path, processes=processes) as first:
        sent = first.make_requests(requests(12))
    with client(path, processes=processes) as second:
        again = second.make_requests(requests(12))
        tracker = second.tracker
    assert tracker.total_attempts == 0
    assert tracker.num_cache_hits == 12
    assert tracker.num_api_calls == 12
    assert tracker.total_cost == 0.0
    assert tracker.cache_saved_cost == pytest.approx(first.tracker.total_cost)
    assert first.tracker.total_cost > 0
    for before, after in zip(sent, again, strict=True):
        assert isinstance(after, litellm.ModelResponse)
        assert after.choices[0].message.content == before.choices[0].message.content
        assert after.usage.model_dump() == before.usage.model_dump()
    assert tracker.details["num_cache_hits"] == 12
    assert "Answered from the cache: 12" in str(tracker)


def test_a_hit_waits_for_no_rate_limit_and_no_spend_cap(tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    with client(path) as first:
        first.make_requests(requests(20))
    # one request a minute and a cap below one request's price: only the cache can answer
    with client(path, rpm=1, max_delay_seconds=0.5, max_cost=1e-12) as second:
        start = time.monotonic()
        answered = second.make_requests(requests(20))
        elapsed = time.monotonic() - start
    assert all(answer is not None for answer in answered)
    assert second.last_errors == {}
    assert elapsed < 0.5 + 3  # generous: nothing waited for the limiter's 60-s refill


def test_errors_are_not_stored(tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    failing = [chat("boom #fail=400"), chat("fine")]
    with client(path) as first:
        first.make_requests(failing)
    with client(path) as second:
        answered = second.make_requests(failing)
    assert answered[0] is None and answered[1] is not None
    assert second.tracker.total_attempts == 1  # the failure is sent again
    assert second.tracker.num_cache_hits == 1
    assert len(ResponseCache(path)) == 1


def test_refresh_sends_again_and_overwrites(tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    with client(path) as first:
        first.make_requests(requests(3))
    with client(path, cache_mode="refresh") as refresh:
        refresh.make_requests(requests(3))
    assert refresh.tracker.total_attempts == 3
    assert refresh.tracker.num_cache_hits == 0
    assert len(ResponseCache(path)) == 3


def test_off_neither_reads_nor_writes(tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    with client(path, cache_mode="off") as off:
        off.make_requests(requests(3))
        assert off.cache is None
    assert off.tracker.total_attempts == 3
    assert not path.exists()


def test_a_cache_object_and_bad_modes():
    cache = ResponseCache(":memory:")
    assert open_cache(cache, "use") is cache
    assert open_cache(cache, "refresh").mode == "refresh"  # type: ignore[union-attr]
    assert open_cache(None, "use") is None
    with pytest.raises(ConfigurationError, match="cache_mode"):
        open_cache("x.sqlite", "sometimes")
    with pytest.raises(ConfigurationError, match="cache_mode"):
        APIClient(cache="x.sqlite", cache_mode="always")


def _write_and_read(path: str, worker: int, count: int) -> int:
    """Store ``count`` answers of its own while the other processes store theirs."""
    from llm_api_client.engine.messages import Outcome
    from llm_api_client.records import UsageRecord
    from tests.fakes import make_response

    cache = ResponseCache(path)
    hits = 0
    for i in range(count):
        request = chat(f"w{worker}-{i}")
        record = UsageRecord(index=i, model="gpt-4o-mini", cost=0.001)
        outcome = Outcome(i, make_response("gpt-4o-mini", f"a{worker}-{i}"), None, record)
        cache.remember(request, outcome)
        hit = cache.lookup(i, request)
        hits += hit is not None and hit.response.choices[0].message.content == f"a{worker}-{i}"
    cache.close()
    return hits


def test_processes_share_one_file(tmp_path: Path):
    path, workers, count = str(tmp_path / "shared.sqlite"), 4, 150
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        hits = pool.starmap(_write_and_read, [(path, w, count) for w in range(workers)])
    assert hits == [count] * workers
    with sqlite3.connect(path) as connection:
        stored = connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    assert stored == workers * count
    assert mode == "wal"


def test_no_credential_is_written_to_the_file(tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    secret = "sk-never-in-the-cache-0123456789"
    with client(path) as first:
        first.make_requests(requests(2, api_key=secret))
    assert secret.encode() not in path.read_bytes()


@pytest.mark.slow
@pytest.mark.timeout(600)  # two runs of 300 rows; minutes on a loaded 2-core machine
def test_a_second_run_with_the_same_cache_sends_nothing(tmp_path: Path):
    import json

    from llm_api_client.cli import main as cli_main
    from llm_api_client.simulator import Simulator

    n, cache = 300, tmp_path / "cache.sqlite"
    data = tmp_path / "in.jsonl"
    rows = (
        json.dumps({"model": "openai/sim", "messages": [chat(f"q{i}")["messages"][0]]})
        for i in range(n)
    )
    data.write_text("".join(row + "\n" for row in rows))
    with Simulator() as sim:
        common = ["run", str(data), "--api-base", sim.base_url, "--api-key", "x", "--quiet"]
        assert cli_main.main([*common, "-o", str(tmp_path / "1.jsonl"), "--cache", str(cache)]) == 0
        sent = sim.stats()["received"]
        assert cli_main.main([*common, "-o", str(tmp_path / "2.jsonl"), "--cache", str(cache)]) == 0
        assert sim.stats()["received"] == sent == n
    first, second = (_answers(tmp_path / name) for name in ("1.jsonl", "2.jsonl"))
    assert second == first  # each row's own answer, under the id the first run gave it
    assert sorted(second.values()) == sorted(f"echo: q{i}" for i in range(n))


def _answers(output: Path) -> dict[str, str]:
    import json

    rows = [json.loads(line) for line in output.read_text().splitlines()]
    return {
        row["custom_id"]: row["response"]["body"]["choices"][0]["message"]["content"]
        for row in rows
    }
