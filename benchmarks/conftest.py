"""Settings for the benchmark session only.

The benchmarks drive real litellm through many threads for long runs, and one event loop that
litellm's synchronous paths create is never closed: it warns when some later, unrelated test
collects it (seen only in this session; this package creates no event loop of its own outside
``asyncio.run`` in the simulator, which closes its loop). Ignore exactly that warning here.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Exception ignored in. <function BaseEventLoop.__del__"
        ":pytest.PytestUnraisableExceptionWarning",
    )
