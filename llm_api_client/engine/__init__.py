"""The engine: a coordinator in the calling process, worker processes x thread pools, queues.

::

    caller's iterable of request dicts
            │  pulled lazily, only while fewer than `window` are in flight (backpressure)
            ▼
    ┌──────────────────────── coordinator (calling process) ────────────────────────┐
    │ BatchStream: prepare (validate, sanitize, truncate, count tokens with tiktoken) │
    │              spend cap, dispatch to the least-loaded worker, restore order      │
    │ owns: SharedMemoryRateLimiter (creates + unlinks), APIUsageTracker, history     │
    └──────┬───────────────────────────────┬──────────────────────────▲──────────────┘
           │ CallItem (pickled bytes)      │ CallItem                 │ Outcome (pickled bytes):
           ▼ one task queue per worker     ▼                          │ response + UsageRecord
    ┌─ worker process 0 ────────┐   ┌─ worker process N-1 ──────┐     │ or a typed error
    │ T threads, each:          │   │ T threads                  │────┘ one shared result queue
    │  acquire(cost) ──────────────────▶ shared-memory token bucket (requests, tokens, ...)
    │  litellm.completion       │   │  (429 → pause all; headers → learn limits)
    │  retry per policy         │   │                            │
    └───────────────────────────┘   └────────────────────────────┘

Each worker ignores Ctrl-C and exits when its parent dies. The coordinator knows which requests
each worker holds: when a worker dies they are sent again once (then fail with
``WorkerCrashedError``) and a replacement is forked. Small batches, and limits one process can
serve, run on a ``ThreadBackend`` in the calling process instead: the same loop, the same
per-request pipeline, no processes.

Modules: ``coordinator`` (the loop, ``BatchStream``), ``processes`` and ``threads`` (the two
backends), ``worker`` (the worker process), ``execution`` (one request in a worker thread),
``messages`` (what crosses the queues), ``sizing`` (default processes and threads).
"""
