"""The 0.1.8 module path of ``APIClient``, kept so ``from llm_api_client.api_client import
APIClient`` goes on working."""

from llm_api_client.client import APIClient

__all__ = ["APIClient"]
