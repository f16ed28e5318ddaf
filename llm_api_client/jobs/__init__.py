"""Batch-file jobs: what ``llm-api-client run`` does, apart from parsing its arguments.

- ``driver``: one resumable run (``BatchJob``): resume, stream the rows to a client, write each
  result and failure, summarize;
- ``batchfile``: the JSONL input read as a stream, the output written durably, resume;
- ``progress``: the progress bar and the run's rates.
"""
