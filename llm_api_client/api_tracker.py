"""The 0.1.8 module path of ``APIUsageTracker``, kept so old imports go on working."""

from llm_api_client.tracker import APIUsageTracker

__all__ = ["APIUsageTracker"]
