"""``run -``: the input read from standard input.

A run reads its input twice (a quick count for the progress bar, then the rows), and the price
check and the dry run read it once more, so standard input is first copied to a temporary file
beside the output; the file is removed when the run ends. Rows keep their ids (``custom_id``, or
the content's), so piping the same data again resumes the same output.

    with input_file("-", folder="results/") as path:
        BatchJob(JobOptions(path, "results/out.jsonl")).run(make_client)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["STDIN", "input_file"]

STDIN = "-"


@contextlib.contextmanager
def input_file(name: str, folder: str | None, stdin: BinaryIO | None = None) -> Iterator[str]:
    """``name`` itself, or for ``-`` a temporary copy of standard input in ``folder``
    (``None``: the system's temporary folder)."""
    if name != STDIN:
        yield name
        return
    source = stdin if stdin is not None else sys.stdin.buffer
    fd, path = tempfile.mkstemp(prefix=".llm-api-client-stdin-", suffix=".jsonl", dir=folder)
    try:
        with os.fdopen(fd, "wb") as copy:
            shutil.copyfileobj(source, copy)
        yield path
    finally:
        os.unlink(path)
