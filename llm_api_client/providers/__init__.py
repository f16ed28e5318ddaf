"""The provider boundary: the only package that imports litellm (with ``llm_api_client._offline``).

Everything the library knows about providers, and every use of litellm, lives here; the engine,
the request pipeline, the rate limiter and the tracker ask these modules instead:

- ``base``: the ``Transport`` protocol, ``setup()`` once per process and ``complete(request,
  timeout=...)`` per attempt, raising errors of our tree;
- ``litellm_transport``: ``LiteLLMTransport`` (``litellm.completion``, the default) and
  ``FunctionTransport`` (any function with its signature: a fake, the user's ``completion=``);
- ``models``: providers and models: which provider a request goes to, supported parameters,
  context windows, the output a request may be charged for;
- ``pricing``: prices from litellm's price map;
- ``answers``: reading answers: the one header normaliser, usage numbers, request ids;
- ``translate``: litellm's, openai's and httpx's exceptions into ours;
- ``http_pool``, ``logging_switch``, ``warmup``: the per-process set-up of litellm.

Importing this package does not import litellm (that takes seconds); its modules do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_api_client._lazy import lazy_attributes

_EXPORTS = {
    "Transport": "llm_api_client.providers.base",
    "FunctionTransport": "llm_api_client.providers.litellm_transport",
    "LiteLLMTransport": "llm_api_client.providers.litellm_transport",
}

if TYPE_CHECKING:
    from llm_api_client.providers.base import Transport
    from llm_api_client.providers.litellm_transport import FunctionTransport, LiteLLMTransport

__all__ = ["FunctionTransport", "LiteLLMTransport", "Transport"]


__getattr__ = lazy_attributes(globals(), _EXPORTS)
