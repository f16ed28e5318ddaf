"""One benchmark variant, run alone in a fresh process: ``python _variant.py '<json spec>'``.

Started by ``run.py`` with this repository's Python (kinds ``ours``, ``bare`` and ``aiohttp``)
or the seed venv's (``seed``), so that each measurement has a process tree of its own: its CPU
is read from ``/proc`` for this process and every descendant (worker processes included) over
the measured batch only, after a warm-up batch has paid for imports, worker start-up and
connection pools.

Spec: ``kind`` (ours | bare | aiohttp | seed), ``mode`` (batch | stream) and, for batches,
``phases``: one measured batch each (a fresh client per phase), with keys ``sim`` (the
simulator's root URL), ``sim_pid``, ``base_url`` (``api_base``; None: from the environment,
for the seed), ``n``, ``warmup``, ``settle`` (seconds to wait after the warm-up),
``concurrency`` (None: the client's default), ``processes``, ``transport`` (ours; None:
"auto"), ``rpm``, ``tpm``, ``max_tokens``, ``retries``. A stream spec has the same keys at the
top level. Prints one line ``RESULT {json}`` on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _harness as h

Spec = dict[str, Any]


# -- the three kinds of client, behind one shape: build once, then run(list) -> list --------


def bare_runner(phase: Spec) -> tuple[Callable[[list[dict[str, Any]]], list[Any]], Any]:
    """A plain ``ThreadPoolExecutor`` calling ``litellm.completion``: the floor for CPU."""
    import litellm

    pool = ThreadPoolExecutor(max_workers=phase["concurrency"])

    def call(request: dict[str, Any]) -> Any:
        try:
            return litellm.completion(**request, max_retries=0)
        except Exception:
            return None

    return (lambda batch: list(pool.map(call, batch))), None


def client_runner(kind: str, spec: Spec) -> tuple[Callable[[list[dict[str, Any]]], list[Any]], Any]:
    """``APIClient`` (ours, or the seed's in its venv) with the same calls for both."""
    from llm_api_client import APIClient

    if kind == "ours":
        preload_litellm()
    kwargs: dict[str, Any] = {
        "max_requests_per_minute": spec["rpm"],
        "max_tokens_per_minute": spec["tpm"],
        "max_workers": spec.get("concurrency"),
    }
    if kind == "ours":
        kwargs["processes"] = spec.get("processes")
        kwargs["transport"] = spec.get("transport") or "auto"
    client = APIClient(**kwargs)
    retries = spec.get("retries", 0)

    def run(batch: list[dict[str, Any]]) -> list[Any]:
        if retries:
            return client.make_requests_with_retries(batch, max_retries=retries)
        return client.make_requests(batch)

    return run, client


def preload_litellm() -> None:
    """Import litellm (about 4 s) before anything is timed, as a warmed-up program would."""
    from llm_api_client import _offline

    _offline.litellm()


def tracker_totals(client: Any) -> dict[str, int]:
    if client is None:
        return {"calls": 0, "prompt": 0, "completion": 0}
    t = client.tracker
    return {
        "calls": int(t.num_api_calls),
        "prompt": int(t.total_prompt_tokens),
        "completion": int(t.total_completion_tokens),
    }


def settled_totals(client: Any, expected_calls: int, kind: str) -> dict[str, int]:
    """The tracker's totals; the seed counts in litellm's success callbacks, which run on a
    thread pool after the call returns, so wait (briefly) for them to stop moving."""
    totals = tracker_totals(client)
    if kind != "seed":
        return totals
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        time.sleep(0.25)
        later = tracker_totals(client)
        if later == totals and later["calls"] >= expected_calls:
            break
        totals = later
    return totals


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def runner(kind: str, phase: Spec) -> tuple[Callable[[list[dict[str, Any]]], list[Any]], Any]:
    """``run(batch) -> answers`` and the client whose tracker is read (None: no tracker)."""
    if kind == "bare":
        return bare_runner(phase)
    if kind == "aiohttp":
        import aiohttp_floor

        return aiohttp_floor.floor_runner(phase)
    return client_runner(kind, phase)


def run_phase(kind: str, phase: Spec) -> dict[str, Any]:
    """Warm up, then measure one batch: wall time, CPU of this process tree, checks."""
    if kind == "seed":  # the seed's sanitizer drops api_base: litellm reads it per call
        os.environ["OPENAI_API_BASE"] = os.environ["OPENAI_BASE_URL"] = phase["sim"] + "/v1"
    run, client = runner(kind, phase)
    base = phase.get("base_url")
    if phase.get("warmup"):
        run(list(h.requests("warm", phase["warmup"], phase["max_tokens"], base)))
        time.sleep(phase.get("settle", 0.0))
    batch = list(h.requests("run", phase["n"], phase["max_tokens"], base))
    h.simulator_call(phase["sim"], "POST", "/reset")
    before, cpu_before = settled_totals(client, 0, kind), h.tree_cpu()
    sim_before = h.tree_cpu(phase["sim_pid"])
    start = h.now()
    responses = run(batch)
    wall = h.now() - start
    cpu = h.cpu_between(cpu_before, h.tree_cpu())
    sim_cpu = h.cpu_between(sim_before, h.tree_cpu(phase["sim_pid"]))
    answered = sum(r is not None for r in responses)
    tracked = delta(settled_totals(client, answered, kind), before)
    wrong = sum(r is not None and not h.echoes(r, "run", i) for i, r in enumerate(responses))
    result = {
        "n": phase["n"],
        "ok": answered,
        "wrong": wrong,
        "wall": wall,
        "cpu": cpu,
        "sim_cpu": sim_cpu,
        "tracker": tracked,
        "errors": error_counts(client),
        "stats": h.simulator_call(phase["sim"], "GET", "/stats"),
    }
    if kind == "ours" and client is not None:
        client.close()
    return result


def error_counts(client: Any) -> dict[str, Any]:
    """Failures by type, with the first message of each (ours keeps them in ``last_errors``)."""
    errors = getattr(client, "last_errors", None)
    if not errors:
        return {}
    out: dict[str, Any] = {}
    for error in errors.values():
        name = type(error).__name__
        entry = out.setdefault(name, {"count": 0, "first": str(error)[:300]})
        entry["count"] += 1
    return out


def run_stream(spec: Spec) -> dict[str, Any]:
    """A generator of ``n`` requests through ``client.stream``; results counted and dropped."""
    from llm_api_client import APIClient

    preload_litellm()
    client = APIClient(
        max_requests_per_minute=spec["rpm"],
        max_tokens_per_minute=spec["tpm"],
        max_workers=spec.get("concurrency"),
        processes=spec.get("processes"),
        keep_history=False,
    )
    rss_base = h.status_kb("VmRSS")
    peak_reset = h.reset_peak_rss()
    source = h.requests("run", spec["n"], spec["max_tokens"], spec["base_url"])
    ok = wrong = 0
    first = None
    start = h.now()
    with client.stream(source) as results:
        for r in results:
            if first is None:
                first = h.now() - start
            if r.ok:
                ok += 1
                wrong += not h.echoes(r.response, "run", r.index)
    wall = h.now() - start
    result = {
        "n": spec["n"],
        "ok": ok,
        "wrong": wrong,
        "wall": wall,
        "first_result": first,
        "rss_base_kb": rss_base,
        "peak_rss_kb": h.status_kb("VmHWM"),
        "peak_reset": peak_reset,
        "tracker": tracker_totals(client),
    }
    client.close()
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    logging.disable(logging.CRITICAL)  # the seed logs every failed request at ERROR
    if spec.get("mode") == "stream":
        result = run_stream(spec)
    else:
        result = {"phases": [run_phase(spec["kind"], phase) for phase in spec["phases"]]}
    print("RESULT " + json.dumps(result), flush=True)
    sys.stderr.flush()
    # The seed's tracker raises in __del__ at interpreter exit; skip finalizers for every kind
    # (ours has already closed its client).
    os._exit(0)


if __name__ == "__main__":
    main()
