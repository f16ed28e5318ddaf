"""``llm-api-client run`` in process, against a fake client with the engine's ``stream`` API.

The fake pulls requests lazily through a small in-flight window and finishes them out of order,
like the engine; its answers echo the last user message, like the simulator.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from llm_api_client.cli import main as cli_main
from llm_api_client.cli import run as run_module
from llm_api_client.errors import (
    BudgetExceededError,
    InternalServerError,
    InvalidRequestError,
    LLMAPIClientError,
)
from llm_api_client.jobs.batchfile import content_id
from llm_api_client.jobs.progress import Progress, RateWindow, format_duration
from llm_api_client.records import Result, UsageRecord
from tests.fakes import no_given_prices  # noqa: F401 - the fixture

SENTINEL_KEY = "sk-sentinel-key-0123456789"


class FakeResponse:
    def __init__(self, content: str) -> None:
        self.id = f"chatcmpl-{content}"
        self.content = content
        self._hidden_params: dict[str, Any] = {}

    def model_dump(self) -> dict[str, Any]:
        return {"id": self.id, "choices": [{"message": {"content": self.content}}]}


def echo(index: int, request: Mapping[str, Any]) -> Result:
    """The simulator's behaviour: answer with the last user message; 'fail' makes a 500."""
    if not isinstance(request.get("messages"), list):
        return Result(index, error=InvalidRequestError("no messages", index=index))
    content = request["messages"][-1]["content"]
    usage = UsageRecord(index=index, model="sim", prompt_tokens=10, completion_tokens=5, cost=0.01)
    if content.startswith("fail"):
        where = f"boom for {request.get('api_key')} at {request.get('api_base')}"
        error = InternalServerError(where, status_code=500, body={"error": "boom"})
        return Result(index, error=error, attempts=3, usage=usage)
    return Result(index, response=FakeResponse(content), attempts=1, usage=usage)


class FakeStream:
    """Dispatches lazily (``window`` in flight), yields in a scrambled order, honours ``stop()``.

    Like the engine, the spend cap is checked at dispatch: the first request over it comes back
    with ``BudgetExceededError`` and dispatch stops.
    """

    def __init__(
        self,
        client: FakeClient,
        requests: Iterable[Mapping[str, Any]],
        window: int,
        max_cost: float | None,
    ) -> None:
        self._client = client
        self._source = enumerate(requests)
        self._window = window
        self._in_flight: list[Result] = []
        self._stopping = False
        self._max_cost = max_cost
        self._spent = 0.0
        self.stop_reason: str | None = None

    def __iter__(self) -> Iterator[Result]:
        return self

    def __next__(self) -> Result:
        self._fill()
        if not self._in_flight:
            raise StopIteration
        result = self._in_flight.pop(len(self._in_flight) // 2)
        self._client.yielded += 1
        self._client.on_result(self._client.yielded)
        return result

    def _fill(self) -> None:
        while not self._stopping and len(self._in_flight) < self._window:
            try:
                index, request = next(self._source)
            except StopIteration:
                return
            self._in_flight.append(self._dispatch(index, request))

    def _dispatch(self, index: int, request: Mapping[str, Any]) -> Result:
        if self._max_cost is not None and self._spent + 0.01 > self._max_cost:
            self._stopping, self.stop_reason = True, "budget"
            return Result(index, error=BudgetExceededError("cap reached", index=index))
        self._client.sent.append(dict(request))
        self._spent += 0.01
        return echo(index, request)

    def stop(self) -> None:
        self._stopping = True
        self.stop_reason = self.stop_reason or "stopped"

    def close(self) -> None:
        self._in_flight.clear()


class FakeClient:
    def __init__(self, window: int = 4, max_cost: float | None = None) -> None:
        self.window = window
        self.max_cost = max_cost
        self.sent: list[dict[str, Any]] = []
        self.yielded = 0
        self.on_result: Callable[[int], None] = lambda n: None
        self.stream_kwargs: dict[str, Any] = {}
        self.closed = False
        self.tracker = "TRACKER SUMMARY"

    def stream(self, requests: Iterable[Mapping[str, Any]], **kwargs: Any) -> FakeStream:
        self.stream_kwargs = kwargs
        return FakeStream(self, requests, self.window, self.max_cost)

    def close(self) -> None:
        self.closed = True


pytestmark = pytest.mark.usefixtures("no_given_prices")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()

    def make_client(args: Any, max_cost: float | None = None) -> FakeClient:
        fake.max_cost = max_cost
        return fake

    monkeypatch.setattr(run_module, "make_client", make_client)
    return fake


def run(*argv: str | Path) -> int:
    return cli_main.main(["run", *map(str, argv)])


def batch_line(custom_id: str, content: str, **body: Any) -> str:
    messages = [{"role": "user", "content": content}]
    request = {"model": "openai/sim", "messages": messages, **body}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions"}
    return json.dumps({**line, "body": request})


def write_input(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def answers(path: Path) -> dict[str, str | None]:
    """custom_id -> the echoed content (None for an error row); asserts each id is there once."""
    found = rows(path)
    ids = [row["custom_id"] for row in found]
    assert len(ids) == len(set(ids)), "a custom_id appears more than once"
    return {
        row["custom_id"]: (
            row["response"]["body"]["choices"][0]["message"]["content"]
            if row["error"] is None
            else None
        )
        for row in found
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_input(tmp_path / "in.jsonl", (batch_line(f"r{i}", f"q{i}") for i in range(20)))


# ------------------------------------------------------------------------------------ tests


def test_every_row_is_answered_once_with_its_own_answer(
    client: FakeClient, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    assert run(data, "--output", out, "--max-retries", "5", "--timeout", "60") == 0
    assert answers(out) == {f"r{i}": f"q{i}" for i in range(20)}
    assert client.stream_kwargs == {"max_retries": 5, "timeout": 60.0, "sanitize": True}
    assert client.closed
    assert not (tmp_path / "out.jsonl.failures.jsonl").exists()
    printed = capsys.readouterr().out
    assert "TRACKER SUMMARY" in printed
    assert "20 succeeded" in printed


def plain(content: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": content}]})


def plain_id(content: str, occurrence: int = 1) -> str:
    return f"{content_id(json.loads(plain(content)))}-{occurrence}"


def test_plain_lines_are_keyed_by_content_and_take_the_cli_defaults(
    client: FakeClient, tmp_path: Path
) -> None:
    data = write_input(tmp_path / "in.jsonl", [plain("p0"), "", plain("p1"), plain("p2")])
    out = tmp_path / "out.jsonl"
    args = ["--model", "openai/x", "--api-base", "http://127.0.0.1:1/v1", "--api-key", "k-1234"]
    assert run(data, "-o", out, *args) == 0
    assert answers(out) == {plain_id(f"p{i}"): f"p{i}" for i in range(3)}
    assert {r["model"] for r in client.sent} == {"openai/x"}
    assert {r["api_base"] for r in client.sent} == {"http://127.0.0.1:1/v1"}


def test_defaults_do_not_override_a_line(client: FakeClient, tmp_path: Path) -> None:
    data = write_input(tmp_path / "in.jsonl", [batch_line("a", "q", api_base="http://line/v1")])
    assert run(data, "-o", tmp_path / "out.jsonl", "--api-base", "http://cli/v1") == 0
    assert client.sent[0]["api_base"] == "http://line/v1"
    assert client.sent[0]["model"] == "openai/sim"


def test_malformed_and_duplicate_lines_do_not_stop_the_others(
    client: FakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        batch_line("a", "qa"),
        "{broken",
        batch_line("a", "again"),
        "[]",
        batch_line("b", "qb"),
    ]
    data = write_input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out) == 1
    assert answers(out) == {"a": "qa", "line-2": None, "line-4": None, "b": "qb"}
    errors = {r["custom_id"]: r["error"] for r in rows(out) if r["error"]}
    assert errors["line-2"]["code"] == "InvalidRequestError"
    assert "line 2" in errors["line-2"]["message"]
    captured = capsys.readouterr()
    assert "line 2: invalid JSON" in captured.err
    assert "line 3: duplicate custom_id 'a'" in captured.err
    assert "2 malformed" in captured.out
    assert "1 duplicate ids skipped" in captured.out


def test_a_malformed_line_does_not_take_the_id_of_a_later_row(
    client: FakeClient, tmp_path: Path
) -> None:
    # 0-based ids, one row corrupted: named by its line number, it used to take the next row's id
    # ("2", on line 3), and that row was skipped as a duplicate on every run.
    lines = [batch_line("0", "q0"), "{corrupted", *(batch_line(f"{i}", f"q{i}") for i in (2, 3))]
    data = write_input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"

    for _ in range(2):  # and again: the rerun answers nothing twice, skips nothing
        assert run(data, "-o", out) == 1

    assert answers(out) == {"0": "q0", "line-2": None, "2": "q2", "3": "q3"}
    assert sorted(r["messages"][0]["content"] for r in client.sent) == ["q0", "q2", "q3"]
    error = next(r["error"] for r in rows(out) if r["custom_id"] == "line-2")
    assert error["message"].startswith("line 2: invalid JSON")


def test_a_malformed_line_does_not_claim_its_own_id(client: FakeClient, tmp_path: Path) -> None:
    wrong_url = {**json.loads(batch_line("a", "first")), "url": "/v1/embeddings"}
    lines = [json.dumps(wrong_url), batch_line("a", "fixed")]
    data = write_input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"

    assert run(data, "-o", out) == 1

    assert [r["messages"][0]["content"] for r in client.sent] == ["fixed"]
    assert {(r["custom_id"], r["error"] and r["error"]["code"]) for r in rows(out)} == {
        ("a", "InvalidRequestError"),
        ("a", None),
    }
    assert run(data, "-o", out) == 0  # "a" is answered: neither line is read again
    assert [r["messages"][0]["content"] for r in client.sent] == ["fixed"]
    assert answers(out) == {"a": "fixed"}


def test_plain_lines_do_not_collide_with_numeric_custom_ids(
    client: FakeClient, tmp_path: Path
) -> None:
    data = write_input(
        tmp_path / "in.jsonl", [batch_line("2", "b"), plain("p"), batch_line("1", "c")]
    )
    out = tmp_path / "out.jsonl"

    assert run(data, "-o", out, "--model", "openai/sim") == 0

    assert answers(out) == {"2": "b", plain_id("p"): "p", "1": "c"}


def test_editing_a_plain_file_between_resumes_never_pairs_an_answer_with_another_row(
    client: FakeClient, tmp_path: Path
) -> None:
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(data, [plain("a"), plain("b"), plain("fail c"), plain("b")])
    assert run(data, "-o", out, "--model", "openai/sim") == 1
    # Insert a line, edit one, leave the failed and the repeated ones: rerun.
    write_input(data, [plain("new"), plain("a"), plain("b edited"), plain("fail c"), plain("b")])
    client.sent.clear()
    assert run(data, "-o", out, "--model", "openai/sim") == 1
    sent = [request["messages"][0]["content"] for request in client.sent]
    assert sorted(sent) == ["b edited", "fail c", "new"]
    for custom_id, content in answers(out).items():
        if content is not None:
            assert custom_id.startswith(content_id(json.loads(plain(content))))


def test_failures_file_is_rerunnable_and_free_of_credentials(
    client: FakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = {"Authorization": f"Bearer {SENTINEL_KEY}"}
    proxy = f"https://team:{SENTINEL_KEY}@proxy.example/v1"
    lines = [
        batch_line("ok", "fine", api_key=SENTINEL_KEY),
        batch_line("bad", "fail now", api_key=SENTINEL_KEY, extra_headers=headers),
        batch_line("via-proxy", "fail too", api_base=proxy),
    ]
    data = write_input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out) == 1
    assert client.sent[0]["api_key"] == SENTINEL_KEY  # used for the call...
    assert client.sent[2]["api_base"] == proxy
    failures = tmp_path / "out.jsonl.failures.jsonl"
    failed = rows(failures)
    assert [f["custom_id"] for f in failed] == ["bad", "via-proxy"]
    assert failed[0]["body"]["messages"][0]["content"] == "fail now"
    assert failed[1]["body"]["api_base"] == "https://[REDACTED]@proxy.example/v1"
    bad = next(row for row in rows(out) if row["custom_id"] == "bad")
    assert bad["error"]["code"] == "InternalServerError"
    assert bad["response"]["status_code"] == 500
    printed = capsys.readouterr()
    assert "credentials removed from 2 rows" in printed.out
    assert "at https://[REDACTED]@proxy.example/v1" in out.read_text()
    for text in (out.read_text(), failures.read_text(), printed.out, printed.err):
        assert SENTINEL_KEY not in text  # ...and written nowhere


def test_rerun_retries_failures_and_never_resends_answers(
    client: FakeClient, tmp_path: Path
) -> None:
    data = write_input(
        tmp_path / "in.jsonl",
        [batch_line("a", "qa"), batch_line("b", "fail"), batch_line("c", "qc")],
    )
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out) == 1
    data = write_input(data, [batch_line("a", "qa"), batch_line("b", "qb"), batch_line("c", "qc")])
    client.sent.clear()
    assert run(data, "-o", out) == 0
    assert [r["messages"][0]["content"] for r in client.sent] == ["qb"]
    assert answers(out) == {"a": "qa", "b": "qb", "c": "qc"}
    assert not (tmp_path / "out.jsonl.failures.jsonl").exists()


def test_the_failures_file_fed_back_as_input(client: FakeClient, tmp_path: Path) -> None:
    data = write_input(tmp_path / "in.jsonl", [batch_line("a", "qa"), batch_line("b", "fail 1")])
    out = tmp_path / "out.jsonl"
    failures = tmp_path / "out.jsonl.failures.jsonl"
    assert run(data, "-o", out) == 1
    assert run(failures, "-o", out) == 1  # still failing: input and failures file are one file
    assert [r["custom_id"] for r in rows(failures)] == ["b"]
    assert answers(out) == {"a": "qa", "b": None}


def test_torn_final_line_from_a_crash_is_discarded(
    client: FakeClient, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out) == 0
    content = out.read_bytes()
    out.write_bytes(content[: len(content) - 30])  # as if kill -9 hit mid-write of the last row
    client.sent.clear()
    assert run(data, "-o", out) == 0
    assert len(client.sent) == 1
    assert answers(out) == {f"r{i}": f"q{i}" for i in range(20)}


def send_signals(client: FakeClient, after: int, *signums: int) -> None:
    def on_result(n: int) -> None:
        if n == after:
            for signum in signums:
                os.kill(os.getpid(), signum)

    client.on_result = on_result


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_first_signal_stops_dispatch_and_keeps_what_finished(
    client: FakeClient,
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    signum: int,
    code: int,
) -> None:
    previous = signal.getsignal(signum)
    send_signals(client, 5, signum)
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out) == code
    assert signal.getsignal(signum) == previous
    first = answers(out)
    # Stopped after 5 results with a window of 4: those 4 in flight still finished and were written.
    assert len(first) == len(client.sent) == 5 + 3
    summary = capsys.readouterr().out
    assert f"{20 - len(first)} not started" in summary
    assert signal.Signals(signum).name in summary
    client.on_result = lambda n: None
    client.sent.clear()
    assert run(data, "-o", out) == 0
    assert len(client.sent) == 20 - len(first)  # nothing answered was sent again
    assert answers(out) == {f"r{i}": f"q{i}" for i in range(20)}


def test_second_signal_exits_at_once(
    client: FakeClient, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    send_signals(client, 3, signal.SIGINT, signal.SIGINT)
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out) == 130
    assert len(answers(out)) == 2  # the third was being handed over: lost, sent again on rerun
    assert "unknown not started" in capsys.readouterr().out
    client.on_result = lambda n: None
    assert run(data, "-o", out) == 0
    assert answers(out) == {f"r{i}": f"q{i}" for i in range(20)}


def test_spend_cap_is_reported_once(
    client: FakeClient, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    capped = ["-o", out, "--max-cost", "0.055", "--price", "openai/sim=1:2"]
    assert run(data, *capped) == 1
    found = answers(out)
    assert sum(v is not None for v in found.values()) == 5
    budget = [r for r in rows(out) if r["error"]]
    assert [r["error"]["code"] for r in budget] == ["BudgetExceededError"]
    assert [r["cost"] for r in rows(out) if not r["error"]] == [0.01] * 5
    captured = capsys.readouterr()
    assert captured.err.count("spend cap reached") == 1
    assert "spend cap of $0.055 reached: $0.05 spent on" in captured.out
    assert "not started" in captured.out

    client.sent.clear()
    assert run(data, *capped) == 1  # the cap covers the output: nothing more is sent
    assert client.sent == []
    assert "$0.05 spent on" in capsys.readouterr().out
    assert run(data, "-o", out) == 0  # a higher cap (here: none) finishes the job
    assert answers(out) == {f"r{i}": f"q{i}" for i in range(20)}


def test_dash_reads_standard_input_and_resumes_like_a_file(
    client: FakeClient, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.jsonl"
    for _ in range(2):  # the second pipe of the same rows resumes: nothing is sent again
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.read_bytes())))
        assert run("-", "-o", out) == 0
    assert answers(out) == {f"r{i}": f"q{i}" for i in range(20)}
    assert len(client.sent) == 20


def test_quiet_prints_only_the_summary_line(
    client: FakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_input(tmp_path / "in.jsonl", [batch_line("a", "qa"), "{broken"])
    assert run(data, "-o", tmp_path / "out.jsonl", "--quiet") == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1
    assert captured.out.startswith("run: 1 succeeded, 0 failed, 1 malformed")


def test_progress_bar_goes_to_stderr(
    client: FakeClient, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(data, "-o", tmp_path / "out.jsonl") == 0
    err = capsys.readouterr().err
    assert "20/20" in err
    assert "req/min" in err


def test_usage_errors(
    client: FakeClient, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    cases: list[tuple[list[str | Path], str]] = [
        ([tmp_path / "nope.jsonl", "-o", out], "no such file"),
        ([data, "-o", data], "must not be the input"),
        ([data, "-o", out, "--failures", out], "must differ"),
        ([data, "-o", tmp_path / "no" / "out.jsonl"], "no such directory"),
    ]
    for argv, message in cases:
        assert run(*argv) == 2
        assert message in capsys.readouterr().err
    assert not client.sent
    with pytest.raises(SystemExit):
        run(data)  # --output is required


def test_the_cli_api_key_is_redacted_from_error_messages(
    client: FakeClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "plain-key-without-a-known-shape"
    data = write_input(tmp_path / "in.jsonl", [batch_line("a", "fail")])
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out, "--api-key", key) == 1
    assert client.sent[0]["api_key"] == key
    assert "boom for [REDACTED]" in out.read_text()
    captured = capsys.readouterr()
    for text in (out.read_text(), captured.out, captured.err):
        assert key not in text


def test_errors_from_the_engine_are_rows_not_crashes(client: FakeClient, tmp_path: Path) -> None:
    data = write_input(tmp_path / "in.jsonl", [json.dumps({"model": "m", "messages": "x"})])
    out = tmp_path / "out.jsonl"
    assert run(data, "-o", out) == 1
    assert rows(out)[0]["error"]["code"] == "InvalidRequestError"
    assert issubclass(InvalidRequestError, LLMAPIClientError)


# --------------------------------------------------------------------- end to end (simulator)

REPO_ROOT = Path(__file__).resolve().parent.parent


def start_cli(*argv: str | Path, stdin: Any = None) -> subprocess.Popen[str]:
    # PYTHONPATH: the checkout's package, whatever the installed copy looks like.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "llm_api_client", "run", *map(str, argv)]
    return subprocess.Popen(
        command, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_rows(path: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} rows appeared in {path}")


@pytest.mark.slow
def test_interrupted_and_rerun_against_the_simulator(tmp_path: Path) -> None:
    from llm_api_client.simulator import Simulator

    n = 120
    data = write_input(
        tmp_path / "in.jsonl",
        (batch_line(f"r{i}", f"question {i}", max_tokens=8) for i in range(n)),
    )
    out = tmp_path / "out.jsonl"
    with Simulator(latency_ms=20) as sim:
        common: list[str | Path] = [
            "-o",
            out,
            "--api-base",
            sim.base_url,
            "--api-key",
            SENTINEL_KEY,
        ]
        first = start_cli(data, *common, "--max-requests-per-minute", "600")
        wait_for_rows(out, 15, first)
        first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=60)
        assert first.returncode == 130, stderr
        interrupted = answers(out)
        assert 15 <= len(interrupted) < n
        assert "not started" in stdout

        second = start_cli(data, *common, "--max-requests-per-minute", "6000", "--quiet")
        stdout2, stderr2 = second.communicate(timeout=90)
        assert second.returncode == 0, stderr2
        final = answers(out)
        assert final == {f"r{i}": f"echo: question {i}" for i in range(n)}
        received = sim.stats()["received_by_key"]
        assert sum(received.values()) == n
        assert set(received.values()) == {1}  # nothing answered was ever sent again
    for text in (out.read_text(), stdout, stderr, stdout2, stderr2):
        assert SENTINEL_KEY not in text


# ------------------------------------------------------------------------------- progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def result(ok: bool = True, tokens: int = 15, cost: float = 0.01) -> Result:
    usage = UsageRecord(
        index=0, model="m", prompt_tokens=tokens - 5, completion_tokens=5, cost=cost
    )
    if ok:
        return Result(0, response=FakeResponse("x"), usage=usage)
    return Result(0, error=InternalServerError("boom", status_code=500), usage=usage)


def test_progress_counts_results_tokens_and_cost() -> None:
    clock, stream = FakeClock(), io.StringIO()
    with Progress(10, file=stream, clock=clock) as progress:
        for ok in (True, True, False):
            clock.now += 1
            progress.update(result(ok))
        progress.advance()  # a malformed line
        progress.skip(2)  # two blank lines
    assert (progress.succeeded, progress.failed, progress.done) == (2, 2, 4)
    assert (progress.tokens, round(progress.cost, 4)) == (45, 0.03)
    assert progress.requests_per_minute == pytest.approx(4 * 60 / 3)
    assert "4/8" in stream.getvalue()
    assert "$0.0300 of ~$0.0600" in stream.getvalue()  # 4 rows of 8 done for $0.03
    assert progress.projected_cost == pytest.approx(0.06)
    assert "2 ok, 2 failed" in progress.summary()
    assert "Progress(done=4/8" in repr(progress)


def test_progress_with_unknown_total_and_quiet_mode() -> None:
    stream = io.StringIO()
    with Progress(None, file=stream, clock=FakeClock()) as progress:
        progress.update(result())
    assert "1 [" in stream.getvalue()
    quiet_stream = io.StringIO()
    with Progress(5, quiet=True, file=quiet_stream) as quiet:
        quiet.update(result())
    assert quiet_stream.getvalue() == ""
    assert quiet.done == 1


def test_progress_initial_rows_count_as_done_but_not_as_rate() -> None:
    clock, stream = FakeClock(), io.StringIO()
    with Progress(10, initial=6, file=stream, clock=clock) as progress:
        clock.now += 60
        progress.update(result())
    assert "7/10" in stream.getvalue()
    assert progress.requests_per_minute == pytest.approx(1.0)


RATE_CASES = [
    # (seconds at which results arrive (15 tokens each), now, expected requests/min)
    ([], 5.0, 0.0),
    ([0.5], 0.6, 60.0),  # under one second: counted over one second
    ([0.0, 1.0, 2.0, 3.0], 4.0, 60.0),  # one per second
    ([0.0] * 10 + [100.0], 100.5, 60.0),  # the burst 100 s ago left the window
    ([float(s) for s in range(0, 120)], 120.0, 60.0),
]


@pytest.mark.parametrize(("arrivals", "now", "per_minute"), RATE_CASES)
def test_rate_window(arrivals: list[float], now: float, per_minute: float) -> None:
    window = RateWindow(seconds=60)
    for at in arrivals:
        window.add(at, 15)
    requests, tokens = window.per_minute(now)
    assert requests == pytest.approx(per_minute, rel=0.05)
    assert tokens == pytest.approx(15 * requests)


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.25, "4.2s"), (75.3, "1m15s"), (3725, "1h02m05s"), (0, "0.0s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.slow
def test_killed_and_rerun_against_the_simulator(tmp_path: Path) -> None:
    from llm_api_client.simulator import Simulator

    n = 100
    data = write_input(
        tmp_path / "in.jsonl",
        (batch_line(f"r{i}", f"question {i}", max_tokens=8) for i in range(n)),
    )
    out = tmp_path / "out.jsonl"
    with Simulator(latency_ms=20) as sim:
        common: list[str | Path] = ["-o", out, "--api-base", sim.base_url, "--quiet"]
        common += ["--api-key", SENTINEL_KEY]
        first = start_cli(data, *common, "--max-requests-per-minute", "600")
        wait_for_rows(out, 10, first)
        first.kill()  # SIGKILL: no cleanup, no summary
        first.communicate(timeout=30)
        written = {cid for cid, content in answers(out).items() if content is not None}
        assert written

        second = start_cli(data, *common, "--max-requests-per-minute", "6000")
        _, stderr = second.communicate(timeout=90)
        assert second.returncode == 0, stderr
        assert answers(out) == {f"r{i}": f"echo: question {i}" for i in range(n)}
        received = sim.stats()["received_by_key"]
    # What was written before the kill was never sent again; only what was in flight then was.
    assert all(received[f"question {cid[1:]}"] == 1 for cid in written)
    assert set(received) == {f"question {i}" for i in range(n)}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((), "AutoTransport"),
        (("--transport", "litellm"), "LiteLLMTransport"),
        (("--transport", "http"), "HTTPTransport"),
    ],
)
def test_transport_option_chooses_the_clients_transport(argv, expected):
    args = cli_main.build_parser().parse_args(["run", "in.jsonl", "-o", "out.jsonl", *argv])
    with run_module.make_client(args) as made:
        assert type(made._runtime.execution.transport).__name__ == expected


def test_an_unknown_transport_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main.build_parser().parse_args(["run", "in", "-o", "out", "--transport", "aiohttp"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_no_sanitize_reaches_the_stream(client: FakeClient, data: Path, tmp_path: Path) -> None:
    assert run(data, "-o", tmp_path / "out.jsonl", "--no-sanitize") == 0
    assert client.stream_kwargs["sanitize"] is False
