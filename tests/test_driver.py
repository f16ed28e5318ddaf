"""The batch-file driver on its own: ``BatchJob`` run from ``JobOptions``, no argument parser.

``tests/test_cli_run.py`` covers what the command does; these check the seam the command is
wired through: options in, a client factory, stats out, the summary on the stream given.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from llm_api_client.jobs.driver import BatchJob, JobOptions
from llm_api_client.jobs.lock import OutputBusyError, OutputLock
from tests.test_cli_run import FakeClient, answers, batch_line, rows, write_input


def test_a_job_runs_from_options_and_reports_on_the_streams_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_input(tmp_path / "in.jsonl", [batch_line(f"r{i}", f"q{i}") for i in range(5)])
    out, err = io.StringIO(), io.StringIO()
    options = JobOptions(
        str(data),
        str(tmp_path / "out.jsonl"),
        defaults={"api_base": "http://127.0.0.1:1/v1"},
        max_retries=4,
        timeout=9.0,
        quiet=True,
    )
    job = BatchJob(options, out=out, err=err)
    client = FakeClient()

    assert job.usage_problem() is None
    stats = job.run(lambda max_cost: client)

    assert (stats.succeeded, stats.failed, stats.exit_code()) == (5, 0, 0)
    assert answers(tmp_path / "out.jsonl") == {f"r{i}": f"q{i}" for i in range(5)}
    assert client.stream_kwargs == {"max_retries": 4, "timeout": 9.0, "sanitize": True}
    assert {r["api_base"] for r in client.sent} == {"http://127.0.0.1:1/v1"}
    assert client.closed
    assert out.getvalue().startswith("run: 5 succeeded") and "TRACKER" not in out.getvalue()
    assert capsys.readouterr() == ("", "")  # nothing on the process's own streams


def test_a_second_job_on_the_same_output_sends_only_what_failed(tmp_path: Path) -> None:
    lines = [batch_line("a", "qa"), batch_line("b", "fail b"), batch_line("c", "qc")]
    data = write_input(tmp_path / "in.jsonl", lines)
    options = JobOptions(str(data), str(tmp_path / "out.jsonl"), quiet=True)

    first = BatchJob(options, out=io.StringIO(), err=io.StringIO()).run(
        lambda max_cost: FakeClient()
    )
    assert (first.succeeded, first.failed, first.exit_code()) == (2, 1, 1)
    failures = rows(tmp_path / "out.jsonl.failures.jsonl")
    assert [row["custom_id"] for row in failures] == ["b"]

    again = FakeClient()
    second = BatchJob(options, out=io.StringIO(), err=io.StringIO()).run(lambda max_cost: again)
    assert (second.already_done, second.failed) == (2, 1)
    assert [r["messages"][-1]["content"] for r in again.sent] == ["fail b"]


def test_a_job_on_an_output_another_holds_fails_at_once_and_touches_nothing(
    tmp_path: Path,
) -> None:
    data = write_input(tmp_path / "in.jsonl", [batch_line("a", "qa")])
    out = tmp_path / "out.jsonl"
    out.write_text("not json, left as it is\n")
    options = JobOptions(str(data), str(out), quiet=True)
    client = FakeClient()

    with OutputLock(out), pytest.raises(OutputBusyError, match="another llm-api-client run"):
        BatchJob(options, out=io.StringIO()).run(lambda max_cost: client)

    assert client.sent == []
    assert out.read_text() == "not json, left as it is\n"  # not compacted under its holder
    stats = BatchJob(options, out=io.StringIO()).run(lambda max_cost: client)  # released
    assert stats.succeeded == 1
