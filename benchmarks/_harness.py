"""Measuring pieces shared by ``run.py`` and ``_variant.py``: standard library only.

``_variant.py`` also runs under the seed's venv, where this repository's package must not be
importable, so nothing here imports ``llm_api_client``.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

MODEL = "openai/gpt-4o-mini"
ECHO_PREFIX = "echo: "  # the simulator answers "echo: <last user message>"


# -- the requests -------------------------------------------------------------------------


def message(tag: str, index: int) -> str:
    """A distinct, short user message (``#1#`` is no prefix of ``#10#``)."""
    return f"{tag}#{index}# answer in one line please"


def request(tag: str, index: int, max_tokens: int, base_url: str | None) -> dict[str, Any]:
    """One chat request; ``base_url`` None leaves the endpoint to the environment (the seed)."""
    out: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": message(tag, index)}],
        "max_tokens": max_tokens,
    }
    if base_url is not None:
        out["api_base"] = base_url
        out["api_key"] = "x"
    return out


def requests(
    tag: str, count: int, max_tokens: int, base_url: str | None
) -> Iterator[dict[str, Any]]:
    return (request(tag, i, max_tokens, base_url) for i in range(count))


def echoes(response: Any, tag: str, index: int) -> bool:
    """Whether ``response`` answers request ``index`` of the run tagged ``tag``."""
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return False
    return isinstance(content, str) and content.startswith(ECHO_PREFIX + f"{tag}#{index}#")


# -- CPU and memory (Linux /proc) ---------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name (field 2) may hold spaces and parentheses: split after the last ")".
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, alive now."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_cpu(root: int | None = None) -> dict[int, float]:
    """User + system CPU seconds of ``root`` (default: this process) and each descendant.

    Per pid, so that a caller can difference two samples process by process: a process that
    appears between samples counts from zero, one that ends is lost (our workers outlive a
    batch; reaped children's time also shows in their parent's cutime/cstime, which is added).
    """
    out = {}
    for pid in descendants(os.getpid() if root is None else root):
        fields = _stat_fields(pid)
        if fields is not None:
            # utime, stime, cutime, cstime are fields 14-17 (indexes 11-14 after the name).
            out[pid] = sum(int(x) for x in fields[11:15]) / _TICKS
    return out


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def status_kb(field: str, pid: str = "self") -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``: peak RSS, ``VmRSS``: current)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


# -- the simulator over HTTP (the seed's venv cannot import ours) -------------------------


def simulator_call(url: str, method: str, path: str) -> dict[str, Any]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.request(method, path)
        body = connection.getresponse().read()
    finally:
        connection.close()
    result: dict[str, Any] = json.loads(body)
    return result


def now() -> float:
    return time.perf_counter()
