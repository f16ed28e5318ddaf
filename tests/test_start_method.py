"""How worker processes start: the choice of method, and spawned workers that really work.

A spawned worker starts from a clean interpreter: it does not see what the parent changed at
run time (here ``_STARTED_AS``), and reaches the parent's shared-memory rate limiter by name.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from llm_api_client import APIClient
from llm_api_client.engine.start_method import ENV_VAR, choose_start_method
from llm_api_client.errors import ConfigurationError
from tests.fakes import chat, make_response

# What a worker sees: forked, the parent's run-time value; spawned, the module's own.
_STARTED_AS = "a clean interpreter"


def answer_with_origin(*, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    """A module-level ``completion=``: picklable by name, as spawn requires."""
    return make_response(model, f"{os.getpid()} {_STARTED_AS}")


@pytest.mark.parametrize(
    ("requested", "env", "platform", "expected"),
    [
        (None, None, "linux", "fork"),
        (None, None, "darwin", "spawn"),
        (None, None, "win32", "spawn"),
        (None, "spawn", "linux", "spawn"),
        ("fork", "spawn", "linux", "fork"),  # the argument wins over the environment
        ("spawn", None, "linux", "spawn"),
        ("forkserver", None, "darwin", "forkserver"),
    ],
)
def test_the_start_method_is_the_argument_else_the_env_var_else_the_platforms(
    monkeypatch, requested, env, platform, expected
):
    if env is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, env)

    assert choose_start_method(requested, platform=platform) == expected


@pytest.mark.parametrize(("requested", "env"), [("vfork", None), (None, "threads")])
def test_an_unknown_start_method_is_refused_when_the_client_is_made(monkeypatch, requested, env):
    monkeypatch.setenv(ENV_VAR, env or "")
    with pytest.raises(ConfigurationError, match=ENV_VAR if env else "start_method"):
        APIClient(start_method=requested)


@pytest.mark.processes
@pytest.mark.timeout(300)  # two spawned workers import litellm: minutes on a loaded machine
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_started_each_way_share_the_parents_rate_limiter(monkeypatch, method):
    monkeypatch.setattr(f"{__name__}._STARTED_AS", "the parent, changed at run time")
    requests = [chat(f"q{i}") for i in range(30)]
    with APIClient(
        None, None, processes=2, completion=answer_with_origin, start_method=method
    ) as client:
        responses = client.make_requests(requests)
        admitted = client._runtime.backend._limiter.snapshot().admitted

    answers = [r.choices[0].message.content.split(" ", 1) for r in responses]
    pids = {pid for pid, _ in answers}
    origins = {origin for _, origin in answers}
    assert str(os.getpid()) not in pids
    expected = "a clean interpreter" if method == "spawn" else "the parent, changed at run time"
    assert origins == {expected}
    assert admitted == 30  # every worker's admissions went to the parent's shared memory
