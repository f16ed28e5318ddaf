"""Ray Data: ``build_processor`` turns a ``Dataset`` of rows into one with each row's answer.

In the manner of ``ray.data.llm.build_llm_processor``: ``preprocess(row)`` makes one request
dict per row; ``concurrency`` Ray actors each own an ``APIClient`` (its threads, no worker
processes) and send their batches' requests; every actor takes its turns from one quota, a
``ClusterStore`` made for the processor (or the store ``rate_limit_store`` names), so the
rate is the limit, not ``concurrency`` times it, and a 429 pauses every actor. Example::

    processor = build_processor(
        lambda row: {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": row["q"]}]},
        concurrency=4,
        max_requests_per_minute=3_000,
    )
    answered = processor(ray.data.read_parquet("questions.parquet"))
    answered.write_parquet("answers/")  # columns: q, ..., response (a dict or None), error

Never resent behind your back: Ray Data's actor restarts and task retries are off for these
actors; a request is retried only by the client's own policy (``max_retries``).
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow
import ray
import ray.data

from llm_api_client._constants import DEFAULT_PROBE_SECONDS
from llm_api_client.client import APIClient
from llm_api_client.engine.ray_backend import NO_RAY_RETRIES, connect
from llm_api_client.ratelimit.cluster_store import SCHEME, ClusterStore
from llm_api_client.records import Result

__all__ = ["Processor", "build_processor", "default_postprocess"]

Row = dict[str, Any]
# Options of the batch (``APIClient.map``), not of the client.
BATCH_OPTIONS = ("max_retries", "sanitize", "timeout", "max_workers")
DEFAULT_BATCH_SIZE = 64
CALLS_PER_ACTOR = 2


def default_postprocess(row: Row, result: Result) -> Row:
    """The input columns, plus ``response`` (a plain dict, or None) and ``error`` (or None)."""
    response = result.response
    return {
        **row,
        "response": None if response is None else response.model_dump(),
        "error": None if result.error is None else str(result.error),
    }


class _ClientActor:
    """One Ray Data actor: an ``APIClient`` on threads, over the processor's shared quota."""

    def __init__(
        self,
        preprocess: Callable[[Row], Mapping[str, Any]],
        postprocess: Callable[[Row, Result], Row],
        store: str,
        client_options: Mapping[str, Any],
        batch_options: Mapping[str, Any],
    ) -> None:
        self._new_client = functools.partial(
            APIClient, processes=0, rate_limit_store=store, **client_options
        )
        self._clients = threading.local()  # a client runs one batch at a time: one per call
        self._preprocess = preprocess
        self._postprocess = postprocess
        self._batch_options = batch_options

    def __call__(self, batch: pyarrow.Table) -> pyarrow.Table:
        if not hasattr(self._clients, "client"):
            self._clients.client = self._new_client()
        rows = batch.to_pylist()
        results = self._clients.client.map(self._preprocess, rows, **self._batch_options)
        return pyarrow.Table.from_pylist(list(map(self._postprocess, rows, results)))


class Processor:
    """``Dataset -> Dataset``: each row's request sent, its answer added (see the module)."""

    def __init__(
        self,
        store: str,
        constructor: dict[str, Any],
        map_options: dict[str, Any],
        owned: ClusterStore | None = None,
    ) -> None:
        self.store = store  # the URL every actor's client takes its quota from
        self._owned = owned
        self._constructor = constructor
        self._map_options = map_options

    def __call__(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        # Ray Data restarts actors and retries their tasks unless max_restarts=0 comes as an
        # extra remote argument, a form it deprecates but has no other spelling for yet.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
            return dataset.map_batches(
                _ClientActor,
                fn_constructor_kwargs={"store": self.store, **self._constructor},
                batch_format="pyarrow",
                **self._map_options,
            )

    def close(self) -> None:
        """Stop the quota's actor, if the processor made it (else it dies with the driver)."""
        if self._owned is not None:
            self._owned.close()


def build_processor(
    preprocess: Callable[[Row], Mapping[str, Any]],
    postprocess: Callable[[Row, Result], Row] | None = None,
    *,
    concurrency: int = 2,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ray_remote_args: Mapping[str, Any] | None = None,
    **client_options: Any,
) -> Processor:
    """A ``Dataset -> Dataset`` function sending ``preprocess(row)`` for every row.

    ``client_options`` are ``APIClient``'s (limits, ``max_delay_seconds``, ``transport``,
    ``rate_limit_store``, ...) and ``make_requests``'s ``max_retries``, ``timeout``,
    ``sanitize``, ``max_workers`` (threads per actor). ``postprocess(row, result)`` returns the
    output row (default: ``default_postprocess``). ``ray_remote_args``: the actors' resources
    (default ``num_cpus=0``).
    """
    connect()
    batch_options = {k: client_options.pop(k) for k in BATCH_OPTIONS if k in client_options}
    store = client_options.pop("rate_limit_store", None)
    owned = None
    if store is None:
        with APIClient(processes=0, **client_options) as client:  # checks the options here
            owned = ClusterStore.create(client.limits, probe_seconds=DEFAULT_PROBE_SECONDS)
        store = f"{SCHEME}{owned.name}"
    constructor = {
        "preprocess": preprocess,
        "postprocess": postprocess or default_postprocess,
        "client_options": client_options,
        "batch_options": batch_options,
    }
    remote_args = {"num_cpus": 0, **(ray_remote_args or {}), **NO_RAY_RETRIES}
    # Two batches at once per actor: the next one starts while the last answers of the one
    # before come in, so the pace does not dip at every batch boundary.
    pool = ray.data.ActorPoolStrategy(
        size=concurrency,
        max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
        enable_true_multi_threading=True,
    )
    map_options = {"compute": pool, "batch_size": batch_size, **remote_args}
    return Processor(store, constructor, map_options, owned)
