"""A client's life in a script: exit time after a timeout, a fork, SIGTERM, leaked shared memory.

Each case runs a script in a fresh interpreter, since what is checked happens at its exit (threads
joined, the resource tracker's "leaked shared_memory" warning) or across processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from llm_api_client.simulator import Simulator

# A fresh interpreter imports litellm: seconds when idle, much longer on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Far below the 120 s default per-request timeout that a hung call would make exit wait for.
EXIT_WITHIN_SECONDS = 30


def start_script(source: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its own process group, with any child it forks
    )


def kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def run_script(source: str, *args: str, timeout: float = 240) -> tuple[str, str]:
    process = start_script(source, *args)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        out, err = process.communicate()
        pytest.fail(f"the script did not end within {timeout} s:\n{out}\n{err}")
    assert process.returncode == 0, err
    return out, err


TIMEOUT_WITH_HUNG_CALLS = """
    import sys, time
    from llm_api_client import APIClient

    def request(text):
        return {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": text}],
            "api_base": sys.argv[1],
            "api_key": "sk-test-not-a-real-key",
            "max_tokens": 8,
        }

    client = APIClient(None, None, processes=0, max_workers=16)
    client.make_requests([request("first")])  # ends the limiter's slow start
    # Every tenth request is never answered: at the timeout they are on the wire, for 120 s.
    requests = [request(f"item {i} #hang" if i % 10 == 3 else "ok") for i in range(60)]
    responses = client.make_requests(requests, timeout=2)
    print(time.monotonic(), flush=True)
    if sys.argv[2] == "close":
        client.close()
"""


@pytest.mark.parametrize("ending", ["close", "no-close"])
def test_a_script_exits_at_once_after_a_timeout_left_calls_hung(ending):
    with Simulator() as sim:
        process = start_script(TIMEOUT_WITH_HUNG_CALLS, sim.base_url, ending)
        try:
            returned_at = float(process.stdout.readline())
            hung = sim.stats()["in_flight"]
            process.wait(timeout=EXIT_WITHIN_SECONDS + 60)
            exited_at = time.monotonic()
        finally:
            kill_group(process)
            _, err = process.communicate()

    assert hung >= 1  # so there were calls on the wire to keep the script waiting
    assert process.returncode == 0, err
    assert exited_at - returned_at < EXIT_WITHIN_SECONDS


FORKED_CHILD_USES_THE_CLIENT = """
    import os, sys
    import multiprocess
    from llm_api_client import APIClient
    from tests.fakes import FakeCompletion, chat

    def workers():
        return sorted(p.pid for p in multiprocess.active_children())

    client = APIClient(None, None, processes=int(sys.argv[1]), completion=FakeCompletion())
    assert client.make_requests([chat("parent")])[0] is not None  # its workers are started
    before = workers()
    pid = os.fork()
    if pid == 0:
        # One request at a time: a thread pool forked from the parent's runs none of them.
        responses = [client.make_requests([chat(f"child {i}")])[0] for i in range(4)]
        print("child", sum(r is not None for r in responses), client.last_errors, flush=True)
        sys.exit(0)  # a normal exit: the child's exit handlers run
    os.waitpid(pid, 0)
    untouched = workers() == before
    print("parent", untouched, client.make_requests([chat("again")])[0] is not None, flush=True)
    client.close()
"""


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_a_forked_child_can_use_the_client_and_leaves_the_parents_workers_alone(processes):
    out, _ = run_script(FORKED_CHILD_USES_THE_CLIENT, str(processes))

    assert out.splitlines() == ["child 4 {}", "parent True True"]


SMALL_BATCH_WITHOUT_CLOSE = """
    from llm_api_client import APIClient
    from tests.fakes import FakeCompletion, chat

    client = APIClient(None, None, completion=FakeCompletion())  # processes chosen by size
    assert client.make_requests([chat(f"q{i}") for i in range(20)])[0] is not None
    with open("/proc/self/maps") as maps:
        print(sum("/dev/shm/" in line for line in maps), flush=True)
"""


def test_a_small_batch_on_threads_maps_no_shared_memory():
    out, err = run_script(SMALL_BATCH_WITHOUT_CLOSE)

    assert out.split() == ["0"]
    assert "leaked" not in err


KILLED_AFTER_A_BATCH = """
    import time
    from llm_api_client import APIClient
    from tests.fakes import FakeCompletion, chat

    client = APIClient(None, None, processes=2, completion=FakeCompletion())
    assert client.make_requests([chat("hello")])[0] is not None
    with open("/proc/self/maps") as maps:
        segments = {line.split()[5] for line in maps if "/dev/shm/psm_" in line}
    print(*segments, flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_parent_leaks_no_shared_memory(signum):
    process = start_script(KILLED_AFTER_A_BATCH)
    try:
        segments = process.stdout.readline().split()
        assert len(segments) == 1 and os.path.exists(segments[0])
        process.send_signal(signum)
        # stderr ends once the workers and the resource tracker, which share it, have exited.
        _, err = process.communicate(timeout=60)
    finally:
        kill_group(process)

    assert "leaked" not in err
    assert not os.path.exists(segments[0])
