"""Tests and benchmarks run offline: litellm loads the price map it ships, never fetches one.

The package leaves that choice to the user (see ``llm_api_client._offline``); the test suite
makes it here, before anything imports litellm, for every test process and the subprocesses
they start.
"""

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
