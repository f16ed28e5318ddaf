"""``APIClient.embed``: vectors for a list of texts, in input order, a few requests at a time.

The texts are cut into requests of ``batch_size`` inputs (``{"model": ..., "input": [...]}``
plus the caller's options), sent through the client's engine like any batch (rate limits,
retries, usage and cost in the tracker), and the vectors put back in the texts' order::

    vectors = client.embed(texts, model="text-embedding-3-small", batch_size=256)
    vectors[i]            # the vector of texts[i]; None if its request failed

Why a request failed is in ``client.last_errors[n]``, ``n`` being the request's number
(``i // batch_size``).
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from llm_api_client._constants import DEFAULT_EMBED_BATCH_SIZE
from llm_api_client.errors import ConfigurationError
from llm_api_client.prepare.embedding import MAX_INPUTS

__all__ = ["Embeddings", "embed_texts", "embedding_requests", "vectors_of"]

Vector = list[float]


class _Batches(Protocol):
    def make_requests_with_retries(
        self, requests: Iterable[Mapping[str, Any]], *, max_retries: int = ...
    ) -> list[Any]: ...


class Embeddings:
    """``embed``, mixed into ``APIClient``."""

    def embed(
        self: _Batches, texts: Sequence[str], *, model: str, **options: Any
    ) -> list[Vector | None]:
        """Vectors of ``texts`` in order, ``batch_size`` inputs per request (see module doc).

        Example::

            vectors = client.embed(texts, model="text-embedding-3-small", batch_size=256)
        """
        return embed_texts(self, texts, model=model, **options)


def embed_texts(
    client: _Batches,
    texts: Sequence[str],
    *,
    model: str,
    batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
    max_retries: int = 2,
    **request_options: Any,
) -> list[Vector | None]:
    """The vector of each text, in order (``None`` for the texts of a failed request)."""
    requests = embedding_requests(texts, model=model, batch_size=batch_size, **request_options)
    responses = client.make_requests_with_retries(requests, max_retries=max_retries)
    out: list[Vector | None] = []
    for request, response in zip(requests, responses, strict=True):
        count = len(request["input"])
        out.extend(vectors_of(response, count) if response is not None else [None] * count)
    return out


def embedding_requests(
    texts: Sequence[str], *, model: str, batch_size: int, **request_options: Any
) -> list[dict[str, Any]]:
    """``texts`` cut into embedding requests of at most ``batch_size`` inputs each."""
    if isinstance(texts, str):
        raise ConfigurationError("texts must be a list of strings, not one string")
    if type(batch_size) is not int or not 1 <= batch_size <= MAX_INPUTS:
        raise ConfigurationError(f"batch_size must be an integer in [1, {MAX_INPUTS}]")
    items = list(texts)
    return [
        {**request_options, "model": model, "input": items[start : start + batch_size]}
        for start in range(0, len(items), batch_size)
    ]


def vectors_of(response: Any, count: int) -> list[Vector]:
    """The ``count`` vectors of an embeddings response, in the order of its inputs."""
    data = sorted(response.data, key=lambda item: _field(item, "index"))
    vectors = [_vector(_field(item, "embedding")) for item in data]
    if len(vectors) != count:
        raise ValueError(f"expected {count} vectors in the answer, got {len(vectors)}")
    return vectors


def _vector(embedding: Any) -> Vector:
    if not isinstance(embedding, str):
        return list(embedding)
    values = array("f", base64.b64decode(embedding))  # encoding_format="base64"
    if sys.byteorder == "big":
        values.byteswap()  # OpenAI sends little-endian float32
    return values.tolist()


def _field(item: Any, name: str) -> Any:
    # litellm keeps the answer's items as dicts; an SDK-built response has objects.
    return item[name] if isinstance(item, Mapping) else getattr(item, name)
