"""Batch files: parsing input lines, durable output rows, compaction for resume, secrets."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api_client.errors import (
    APIConnectionError,
    BudgetExceededError,
    InternalServerError,
    RateLimitError,
)
from llm_api_client.jobs.batchfile import (
    BatchRequest,
    DuplicateLine,
    InputReader,
    JsonlAppender,
    MalformedLine,
    compact_output,
    content_id,
    count_lines,
    error_row,
    failure_request,
    is_success_row,
    parse_line,
    strip_credentials,
    success_row,
)

SENTINEL_KEY = "sk-sentinel-0123456789abcdef"
BODY = {"model": "openai/sim", "messages": [{"role": "user", "content": "hi"}]}


def batch_line(custom_id: Any = "a", **overrides: Any) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": BODY}
    line.update(overrides)
    return json.dumps(line).encode() + b"\n"


class FakeResponse:
    """Stands in for a litellm ModelResponse: what success_row reads from one."""

    def __init__(self, content: str, headers: dict[str, str] | None = None) -> None:
        self.id = "chatcmpl-1"
        self.content = content
        self._hidden_params = {"additional_headers": headers or {}}

    def model_dump(self) -> dict[str, Any]:
        return {"id": self.id, "choices": [{"message": {"content": self.content}}]}


# ---------------------------------------------------------------------------------- parsing

GOOD_LINES = [
    # (raw line, expected custom_id, expected body)
    (batch_line("req-1"), "req-1", BODY),
    ('{"custom_id": "é", "method": "POST", "url": "/v1/chat/completions", "body": {}}'.encode(),
     "é", {}),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "custom_id", "body"), GOOD_LINES)
def test_good_lines_parse(raw: bytes, custom_id: str, body: dict[str, Any]) -> None:
    assert parse_line(7, raw) == BatchRequest(7, custom_id, body)


@pytest.mark.parametrize(
    "raw", [json.dumps(BODY).encode(), json.dumps({"messages": []}).encode() + b"\r\n"]
)
def test_plain_lines_are_named_by_their_content(raw: bytes) -> None:
    parsed = parse_line(7, raw)
    body = json.loads(raw)
    assert parsed == BatchRequest(7, content_id(body), body, by_content=True)
    assert parse_line(99, raw) == BatchRequest(99, content_id(body), body, by_content=True)


CONTENT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (dict(reversed(CONTENT.items())), True),  # key order
        ({**CONTENT, "api_key": "sk-a"}, True),  # credentials are not content
        ({**CONTENT, "max_tokens": 6}, False),
        ({**CONTENT, "messages": [{"role": "user", "content": "hi!"}]}, False),
        ({**CONTENT, "model": "n"}, False),
    ],
)
def test_content_id_follows_the_request_not_its_formatting(
    other: dict[str, Any], same: bool
) -> None:
    assert (content_id(other) == content_id(CONTENT)) is same
    assert content_id(CONTENT).startswith("content-")


BAD_LINES = [
    # (raw line, expected custom_id of the error row, words in the message)
    (b"{not json", "line-7", "invalid JSON"),
    (b"\xff\xfe", "line-7", "invalid JSON"),
    (b"[1, 2]", "line-7", "not a JSON object"),
    (b'"a string"', "line-7", "not a JSON object"),
    (batch_line("x", method="GET"), "x", "method"),
    (batch_line("x", url="/v1/embeddings"), "x", "url"),
    (batch_line("x", body=None), "x", "body"),
    (batch_line("x", body=[1]), "x", "body"),
    (json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"}).encode(),
     "x", "body"),
    (batch_line(12), "line-7", "custom_id"),
    (batch_line(""), "line-7", "custom_id"),
    (json.dumps({"body": BODY}).encode(), "line-7", "custom_id"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "custom_id", "words"), BAD_LINES)
def test_bad_lines_are_reported_with_their_line(raw: bytes, custom_id: str, words: str) -> None:
    parsed = parse_line(7, raw)
    assert isinstance(parsed, MalformedLine)
    assert (parsed.line_number, parsed.custom_id) == (7, custom_id)
    assert words in parsed.message


@pytest.mark.parametrize("raw", [b"", b"\n", b"   \r\n", b"\t"])
def test_blank_lines_are_nothing(raw: bytes) -> None:
    assert parse_line(1, raw) is None


def write(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
    return path


def test_reader_skips_done_ids_and_flags_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.jsonl",
        batch_line("a"),
        batch_line("b"),
        b"",
        b"{oops",
        batch_line("a"),
        json.dumps(BODY).encode(),
    )
    reader = InputReader(path, done={"b"})
    entries = list(reader)
    assert [type(e) for e in entries] == [BatchRequest, MalformedLine, DuplicateLine, BatchRequest]
    assert [e.custom_id for e in entries] == ["a", "line-4", "a", f"{content_id(BODY)}-1"]
    assert (reader.already_done, reader.blank) == (1, 1)


def test_identical_plain_lines_are_numbered_rows_and_edits_move_no_answer(
    tmp_path: Path,
) -> None:
    same, other = json.dumps(BODY).encode(), json.dumps({**BODY, "n": 2}).encode()
    first = [e.custom_id for e in InputReader(write(tmp_path / "a.jsonl", same, other, same))]
    base = content_id(BODY)
    assert first == [f"{base}-1", f"{content_id({**BODY, 'n': 2})}-1", f"{base}-2"]
    # A line inserted before them, and one edited: the others keep their ids.
    edited = json.dumps({**BODY, "n": 3}).encode()
    second = InputReader(write(tmp_path / "b.jsonl", b'{"x": 1}', same, edited, same))
    assert [e.custom_id for e in second][1::2] == [f"{base}-1", f"{base}-2"]


def test_a_malformed_line_claims_no_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.jsonl",
        b"{oops",
        batch_line("x", method="GET"),
        batch_line("line-1"),  # the malformed first line's id, taken by a user's own row
        batch_line("x"),
    )
    reader = InputReader(path)
    entries = list(reader)
    assert [type(e) for e in entries] == [MalformedLine, MalformedLine, BatchRequest, BatchRequest]
    assert [e.custom_id for e in entries] == ["line-1", "x", "line-1", "x"]
    assert reader.seen == {"line-1", "x"}


def test_reader_is_lazy(tmp_path: Path) -> None:
    path = write(tmp_path / "in.jsonl", batch_line("a"), b"{oops")
    iterator = iter(InputReader(path))
    assert next(iterator).custom_id == "a"
    path.unlink()  # already open: the reader streams from its handle, it never loaded the file
    assert isinstance(next(iterator), MalformedLine)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"\n\n", 2), (b"a\n" * 70_000, 70_000)],
)
def test_count_lines(tmp_path: Path, content: bytes, expected: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    assert count_lines(path) == expected


# ----------------------------------------------------------------------------------- output


def test_success_row_has_the_batch_output_shape() -> None:
    row = success_row("a", FakeResponse("hello", {"llm_provider-x-request-id": "req_9"}))
    assert row["id"].startswith("batch_req_")
    assert row["custom_id"] == "a"
    assert row["error"] is None
    assert row["response"]["status_code"] == 200
    assert row["response"]["request_id"] == "req_9"
    assert row["response"]["body"]["choices"][0]["message"]["content"] == "hello"
    assert is_success_row(row)


def test_success_row_from_a_real_model_response() -> None:
    from llm_api_client import _offline

    litellm = _offline.litellm()
    response = litellm.ModelResponse(
        id="chatcmpl-7",
        choices=[{"message": {"role": "assistant", "content": "hi"}, "index": 0}],
        model="sim",
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    )
    row = json.loads(json.dumps(success_row("a", response)))
    assert row["response"]["request_id"] == "chatcmpl-7"
    assert row["response"]["body"]["object"] == "chat.completion"
    assert row["response"]["body"]["usage"]["total_tokens"] == 4


ERRORS = [
    # (error, expected response status or None)
    (InternalServerError("boom", status_code=500, request_id="r1", body={"error": "x"}), 500),
    (RateLimitError("slow down", status_code=429, body=None), 429),
    (APIConnectionError("refused"), None),
    (BudgetExceededError("cap"), None),
]


@pytest.mark.parametrize(("error", "status"), ERRORS)
def test_error_rows_carry_the_class_name_and_status(error: Exception, status: int | None) -> None:
    row = error_row("a", error)
    assert row["error"]["code"] == type(error).__name__
    assert not is_success_row(row)
    if status is None:
        assert row["response"] is None
    else:
        assert row["response"]["status_code"] == status


def test_error_rows_never_carry_a_secret() -> None:
    error = InternalServerError(
        f"bad key {SENTINEL_KEY}",
        status_code=500,
        body={"error": {"message": f"Incorrect API key provided: {SENTINEL_KEY}"}, "api_key": "k"},
    )
    text = json.dumps(error_row("a", error))
    assert SENTINEL_KEY not in text
    assert '"k"' not in text


def test_failure_request_is_rerunnable_and_has_no_credentials(tmp_path: Path) -> None:
    body = {
        **BODY,
        "api_key": SENTINEL_KEY,
        "extra_headers": {"Authorization": f"Bearer {SENTINEL_KEY}", "X-Trace": "t"},
    }
    line, removed = failure_request(BatchRequest(3, "c", body))
    assert removed
    assert SENTINEL_KEY not in json.dumps(line)
    assert line["body"]["extra_headers"] == {"X-Trace": "t"}
    reparsed = parse_line(1, json.dumps(line).encode())
    assert isinstance(reparsed, BatchRequest)
    assert (reparsed.custom_id, reparsed.body["messages"]) == ("c", BODY["messages"])


def test_user_info_in_a_url_is_a_credential_in_every_row() -> None:
    proxy = f"https://team:{SENTINEL_KEY}@proxy.example/v1"
    body = {**BODY, "api_base": proxy, "base_url": f"http://{SENTINEL_KEY}@gw.example"}
    line, removed = failure_request(BatchRequest(3, "c", body))
    error = APIConnectionError(f"Connection error: POST {proxy}/chat/completions")

    assert removed
    assert line["body"]["api_base"] == "https://[REDACTED]@proxy.example/v1"
    assert line["body"]["base_url"] == "http://[REDACTED]@gw.example"
    assert SENTINEL_KEY not in json.dumps(line) + json.dumps(error_row("c", error))


def test_strip_credentials_reports_nothing_removed() -> None:
    assert strip_credentials(BODY) == (BODY, False)
    plain = {**BODY, "api_base": "http://127.0.0.1:8000/v1", "user": "someone@example.com"}
    assert strip_credentials(plain) == (plain, False)


def test_appender_writes_whole_lines_and_fsyncs_by_count_and_time(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "out.jsonl"
    appender = JsonlAppender(path, fsync_every=3, fsync_interval=10.0, clock=lambda: now[0])
    appender.write({"n": 1})
    appender.write({"n": 2})
    assert "unsynced=2" in repr(appender)
    appender.write({"n": 3})
    assert "unsynced=0" in repr(appender)  # by count
    appender.write({"n": 4})
    now[0] = 11.0
    appender.write({"n": 5})
    assert "unsynced=0" in repr(appender)  # by time
    appender.close()
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        appender.write({"n": 6})


def test_appender_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "out.jsonl", b'{"n": 0}')
    with JsonlAppender(path) as appender:
        appender.write({"n": 1})
    assert path.read_text().count("\n") == 2


# ----------------------------------------------------------------------------------- resume


def ok(custom_id: str, content: str = "x") -> bytes:
    return json.dumps(success_row(custom_id, FakeResponse(content))).encode() + b"\n"


def failed(custom_id: str) -> bytes:
    return json.dumps(error_row(custom_id, APIConnectionError("down"))).encode() + b"\n"


def ids(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def test_compaction_keeps_first_success_and_drops_failures(tmp_path: Path) -> None:
    path = write(tmp_path / "out.jsonl", ok("a"), failed("b"), ok("c"), ok("a", "later"), b"junk")
    assert compact_output(path) == {"a", "c"}
    assert ids(path) == ["a", "c"]
    assert (
        json.loads(path.read_text().splitlines()[0])["response"]["body"]["choices"][0]["message"][
            "content"
        ]
        == "x"
    )
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_compaction_discards_a_torn_final_line(tmp_path: Path) -> None:
    torn = ok("c")[:-20]  # kill -9 in the middle of a write
    path = tmp_path / "out.jsonl"
    path.write_bytes(ok("a") + ok("b") + torn)
    assert compact_output(path) == {"a", "b"}
    assert path.read_bytes().endswith(b"\n")
    assert ids(path) == ["a", "b"]


def test_compaction_of_a_torn_line_after_failures(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(failed("a") + ok("b") + ok("c")[:10])
    assert compact_output(path) == {"b"}
    assert ids(path) == ["b"]


def test_compaction_of_a_missing_or_empty_file(tmp_path: Path) -> None:
    assert compact_output(tmp_path / "nothing.jsonl") == set()
    empty = write(tmp_path / "empty.jsonl")
    empty.write_bytes(b"")
    assert compact_output(empty) == set()


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans()), max_size=20),
    cut=st.integers(min_value=0, max_value=200),
)
def test_compaction_leaves_each_answered_id_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, bool]], cut: int
) -> None:
    path = tmp_path_factory.mktemp("c") / "out.jsonl"
    content = b"".join(ok(i) if success else failed(i) for i, success in rows)
    content = content[: max(0, len(content) - cut)]  # any crash point
    path.write_bytes(content)
    done = compact_output(path)
    kept = ids(path)
    assert len(kept) == len(set(kept)) == len(done)
    assert set(kept) == done
    assert done <= {i for i, success in rows if success}
    assert compact_output(path) == done  # idempotent


def test_success_row_from_a_response_unpickled_in_a_fresh_process(tmp_path: Path) -> None:
    # The engine's workers pickle responses; in the coordinator, litellm's lazily built pydantic
    # classes are then not built yet and a plain model_dump() raises TypeError.
    from llm_api_client import _offline

    litellm = _offline.litellm()
    response = litellm.ModelResponse(
        id="chatcmpl-9",
        choices=[{"message": {"role": "assistant", "content": "from a worker"}, "index": 0}],
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    )
    (tmp_path / "r.pkl").write_bytes(pickle.dumps(response))
    script = (
        "import json, pickle, sys\n"
        "from llm_api_client import _offline\n"
        "_offline.litellm()\n"
        "from llm_api_client.jobs.batchfile import success_row\n"
        "response = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "print(json.dumps(success_row('a', response)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "r.pkl")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(done.stdout)["response"]["body"]
    assert body["choices"][0]["message"]["content"] == "from a worker"
    assert body["usage"]["total_tokens"] == 4
