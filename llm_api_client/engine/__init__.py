"""The engine: a coordinator in the calling process, worker processes x thread pools, pipes.

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
           ▼ one task pipe per worker      ▼                          │ response + UsageRecord
    ┌─ worker process 0 ────────┐   ┌─ worker process N-1 ──────┐     │ or a typed error,
    │ T threads, each:          │   │ T threads                  │────┘ one result pipe each
    │  acquire(cost) ──────────────────▶ shared-memory token bucket (requests, tokens, ...)
    │  litellm.completion       │   │  (429 → pause all; headers → learn limits)
    │  retry per policy         │   │                            │
    └───────────────────────────┘   └────────────────────────────┘

Each worker ignores Ctrl-C and exits when its parent dies (unlinking the shared memory the
parent can no longer unlink). The coordinator knows which requests each worker holds: when a
worker dies they are sent again once (then fail with ``WorkerCrashedError``) and a replacement
is forked. Small batches, and limits one process can serve, run on a ``ThreadBackend`` in the
calling process instead: the same loop, the same per-request pipeline, daemon threads, an
in-process limiter, no processes and no shared memory.

When a batch is abandoned (``close()``, ``break``, Ctrl-C, the timeout, an error in the caller's
requests) nothing more is sent: workers are killed; threads stop waiting for the limiter or a
backoff (``cancellation``), and a call they have on the wire finishes in the background, counted
by the tracker. A forked child leaves its parent's workers alone and starts its own.

Modules: ``coordinator`` (the loop, ``BatchStream``), ``processes`` and ``threads`` (the two
backends), ``worker`` (the worker process), ``execution`` (one request in a worker thread),
``cancellation`` (waits an abandon cuts short), ``messages`` (what crosses the queues),
``sizing`` (default processes and threads). ``ray_backend`` (issue 16): Ray actors in the worker
processes' place, the same loop and pipeline, the quota in a ``ratelimit.cluster_store`` actor.
"""
