"""The ``llm-api-client`` command: ``simulate``, ``demo`` and ``run`` (one module each)."""
