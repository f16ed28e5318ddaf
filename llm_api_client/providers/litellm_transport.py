"""litellm as a transport: ``LiteLLMTransport`` (the default) and ``FunctionTransport``.

Both call a function with ``litellm.completion``'s signature: the request's keys as keyword
arguments, ``max_retries=0`` (the SDK's own retries would hide attempts from the rate limiter
and from our retry policy) and the attempt's ``timeout``. What the function raises becomes an
error of our tree (``providers.translate``), whatever the function.

An embedding request (``request_kind.is_embedding``) goes to ``litellm.embedding`` instead
(``embedding=``), with the same arguments; a streamed one (``stream=True``) is read whole and
timed here, in the worker (``streaming.read_stream``).

``LiteLLMTransport`` looks ``litellm.completion`` and ``litellm.embedding`` up at every call, so
code that patches them (``unittest.mock.patch("litellm.completion")``) sees exactly the calls a
batch makes. It marks
calls nobody listens to as litellm-internal (``logging_switch``), and its ``setup()`` warms
litellm up and gives it an HTTP pool that never drops an answer (``warmup``, ``http_pool``).

Example, a provider faked without a network::

    def fake(**kwargs):
        return litellm.ModelResponse(choices=[{"message": {"content": "hi"}}])

    APIClient(completion=fake)  # runs on FunctionTransport(fake)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from llm_api_client import _offline
from llm_api_client.providers.http_pool import drop_inherited_clients, install_http_client
from llm_api_client.providers.logging_switch import unheard_logging_skipped
from llm_api_client.providers.streaming import read_stream
from llm_api_client.providers.translate import translate_exception
from llm_api_client.providers.warmup import build_response_types, warm_litellm
from llm_api_client.request_kind import is_embedding, is_streamed

__all__ = ["FunctionTransport", "LiteLLMTransport", "call_kwargs"]

litellm = _offline.litellm()

# Request keys that would let litellm or its SDK retry underneath our policy.
_RETRY_KEYS = ("max_retries", "num_retries")


def call_kwargs(request: Mapping[str, Any], timeout: Any) -> dict[str, Any]:
    """The keyword arguments for one attempt: a copy of ``request`` that retries nothing."""
    kwargs = {key: value for key, value in request.items() if key not in _RETRY_KEYS}
    kwargs["max_retries"] = 0
    kwargs["timeout"] = timeout
    return kwargs


def _litellm_embedding(**kwargs: Any) -> Any:
    with unheard_logging_skipped(litellm):
        return litellm.embedding(**kwargs)  # looked up now: a patched one is called


class FunctionTransport:
    """A transport over ``completion``, any function with ``litellm.completion``'s signature.

    Embedding requests go to ``embedding`` (``litellm.embedding``'s signature; default
    ``litellm.embedding`` itself), so ``APIClient(completion=...)`` replaces chat calls only.
    ``clock`` times streamed answers. ``setup()`` only prepares this process to read litellm's
    response types (which the function presumably returns) and drops litellm clients inherited
    from a parent process.
    """

    def __init__(
        self,
        completion: Callable[..., Any],
        embedding: Callable[..., Any] = _litellm_embedding,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.completion = completion
        self.embedding = embedding
        self.clock = clock

    def setup(self) -> None:
        build_response_types()
        drop_inherited_clients()

    def complete(self, request: dict[str, Any], *, timeout: Any) -> Any:
        try:
            return self._call(request, call_kwargs(request, timeout))
        except Exception as exc:
            raise translate_exception(exc, model=_model_of(request)) from exc

    def _call(self, request: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        if is_embedding(request):
            return self.embedding(**kwargs)
        if not is_streamed(request):
            return self.completion(**kwargs)
        started = self.clock()
        return read_stream(self.completion(**kwargs), request, started, self.clock)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.completion!r})"


def _litellm_completion(**kwargs: Any) -> Any:
    with unheard_logging_skipped(litellm):
        return litellm.completion(**kwargs)  # looked up now: a patched one is called


class LiteLLMTransport(FunctionTransport):
    """The default transport: ``litellm.completion``, on an HTTP pool that keeps its connections."""

    def __init__(self) -> None:
        super().__init__(_litellm_completion)

    def setup(self) -> None:
        warm_litellm()
        drop_inherited_clients()
        install_http_client(litellm)

    def __repr__(self) -> str:
        return "LiteLLMTransport()"


def _model_of(request: Mapping[str, Any]) -> str | None:
    model = request.get("model")
    return model if isinstance(model, str) else None
