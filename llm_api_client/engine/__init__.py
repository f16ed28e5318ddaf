"""The engine: a coordinator in the calling process, worker processes x thread pools, pipes.

::

    APIClient ── Runtime.start_batch(size) ── one Plan: the backend AND its limiter's store
        │ stream(requests)
        ▼
    caller's iterable of request dicts
        │ pulled lazily, only while fewer than `window` are in flight (backpressure)
        ▼
    ┌──────────────────────────── coordinator (calling process) ────────────────────────────┐
    │ BatchStream: prepare (prepare/) · spend cap (Budget) · CallItem to the least-loaded   │
    │ worker · collect Outcomes · tracker.add(record) · Result.from_outcome · order · yield │
    └──────┬─────────────────────▲──────────────────────────┬─────────────────────▲─────────┘
           │ CallItem            │ Outcome                  │ CallItem            │ Outcome
           │ task pipe 0         │ result pipe 0            │ task pipe N-1       │ result pipe N-1
           ▼                     │                          ▼                     │
    ┌─ worker process 0 ─────────┴───────┐          ┌─ worker process N-1 ────────┴──────┐
    │ T threads, each call.execute:      │          │ T threads, the same                │
    │   limiter.admit(cost) ─────────────┼───┬──────┼── limiter.admit(cost)              │
    │   transport.complete(request)      │   │      │   transport.complete(request)      │
    │   retry per policy (call.retry)    │   │      │   retry per policy                 │
    └────────────────────────────────────┘   │      └────────────────────────────────────┘
                                             ▼
                SharedMemoryStore: one quota for every thread of every worker
                (429 → pause everyone; stated limits → learned; see ratelimit/)

Messages (``messages``) are small frozen dataclasses pickled by their sender: ``CallItem`` (the
prepared request, its cost, model, provider, retry budget) down a worker's task pipe, ``Outcome``
(the response or a typed error, and a ``UsageRecord``) up its own result pipe. There is no
shared result queue: a worker killed while writing would hold its lock and silence the others.

Who does what:

- ``APIClient`` (``client.py``): checks the settings, owns the tracker and the history, and asks
  its ``Runtime`` for a backend for each batch; one batch at a time.
- ``Runtime`` (``runtime``): from one ``Plan`` (the ``processes`` setting, else the limit and
  the batch size) chooses the backend and the store its limiter keeps the quota in (threads →
  ``LocalStore``, processes → ``SharedMemoryStore``); starts, reuses, closes and, after a fork,
  forgets them. New backends and stores register there.
- The coordinator (``coordinator.BatchStream``, in the caller's thread): reads the caller's
  iterable a window at a time; prepares each request (a malformed one fails here, unsent);
  answers it from the response cache when it can (``llm_api_client.cache``: never sent, never
  budgeted) and stores each answer there; fails it unsent when its key was stopped, and holds an
  unproven key's requests back (``keyguard``); applies the spend cap; resolves model and
  provider once; dispatches; collects outcomes, re-dispatches the requests of a dead worker
  once (then ``WorkerCrashedError``); adds each usage record to the tracker; yields ``Result``
  objects, in input order if asked; enforces the batch timeout.
- A worker process (``worker``, started by ``processes.ProcessBackend``: forked on Linux,
  inheriting the limiter's shared memory; spawned elsewhere or when asked, mapping it by name,
  see ``start_method``): reads ``CallItem``s from its task pipe into a thread
  pool, sends each ``Outcome`` as soon as it is known, ignores Ctrl-C, and exits when its parent
  dies (unlinking the shared memory the parent can no longer unlink).
- A worker thread (``execution.run_item`` → ``call.execute``): one request from admission to
  outcome: the limiter's turn, the transport's call (``providers/``), what the answer teaches
  the limiter, retries, settlement, the usage record. A bug there becomes that request's error.
- ``threads.ThreadBackend`` replaces the worker processes for small batches and limits one
  process can serve: the same per-request code on daemon threads of the calling process, over a
  ``LocalStore`` the runtime keeps across batches; no processes, no shared memory.
- ``ray_backend.RayBackend`` (``backend="ray"``, issue 16) replaces them with Ray actors, each
  the same per-request code on its threads, over a ``ratelimit.cluster_store.ClusterStore`` (a
  quota held by one Ray actor) or the store ``rate_limit_store`` names; Ray's restarts and
  retries are off, a dead actor's items come back through ``lost()`` like a dead worker's.

When a batch is abandoned (``close()``, ``break``, Ctrl-C, the timeout, an error in the caller's
requests) nothing more is sent: workers are killed; threads stop waiting for the limiter or a
backoff (``cancellation``), and a call they have on the wire finishes in the background, counted
by the tracker. A forked child leaves its parent's workers alone and starts its own.

Modules: ``runtime`` (backend and store, their lifecycle), ``coordinator`` (the loop,
``BatchStream``, ``Budget``), ``processes`` and ``threads`` (the two backends, behind
``backend.Backend``), ``worker`` (the worker process), ``execution`` (one item in a worker
thread), ``cancellation`` (waits an abandon cuts short), ``messages`` (what crosses the pipes),
``sizing`` (default processes and the in-flight window), ``start_method`` (fork or spawn),
``keyguard`` (stops sending with a key the provider keeps refusing). The asyncio API
(``llm_api_client.aio``) drives the same ``BatchStream`` from a thread of its own and hands the
results to the event loop.
"""
