"""Worker-side calling: one request, all its attempts, in the worker thread that owns it.

- ``execute``: the attempt loop (limiter, completion, error translation, usage record);
- ``retry``: which errors are retried and how long to wait between attempts.
"""
