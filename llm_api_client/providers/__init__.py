"""The provider boundary: the only package that imports litellm (with ``llm_api_client._offline``)."""
