"""``/v1/embeddings``: read the request, count its tokens, and make deterministic vectors.

A vector depends only on its input and its length, so a test can recompute what the simulator
returned with ``embedding_for(text, dimensions)``:

* SHAKE-256 of the input gives ``dimensions`` numbers spread evenly over [-1, 1), scaled to unit
  length and rounded to float32 (OpenAI's precision, and what ``encoding_format="base64"``
  carries), so the float and base64 formats decode to the same numbers;
* a shorter vector is the start of the full one scaled to unit length again, which is how
  OpenAI's ``dimensions`` shortens its embeddings.

An input is a string or an array of token ids; a request carries one input or an array of them.
Tokens are counted with tiktoken, as the chat prompts are, without any message framing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm_api_client.simulator.chat import BadRequest, is_int
from llm_api_client.simulator.config import DEFAULT_EMBEDDING_DIMENSIONS
from llm_api_client.simulator.tokens import count_text, encoding_name

MAX_INPUTS = 2048  # OpenAI's bound on the inputs of one request
MAX_INPUT_TOKENS = 8192  # text-embedding-3-*'s (and ada-002's) bound per input
FORMATS = ("float", "base64")
INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)

EmbeddingInput = str | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    inputs: tuple[EmbeddingInput, ...]
    dimensions: int
    encoding_format: str  # "float" or "base64"
    text: str  # the string inputs, one per line: searched for fault markers
    key: str  # whose request this is in /stats: the ``user`` field, else the first input


def parse_embeddings(payload: Any, max_dimensions: int) -> EmbeddingRequest:
    """Validate a decoded request body; raise ``BadRequest`` naming the offending parameter."""
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    inputs = _inputs(payload.get("input"))
    user = payload.get("user")
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        dimensions=_dimensions(payload.get("dimensions"), max_dimensions),
        encoding_format=_encoding_format(payload.get("encoding_format")),
        text="\n".join(item for item in inputs if isinstance(item, str)),
        key=user if isinstance(user, str) and user else _describe(inputs[0]),
    )


def _inputs(value: Any) -> tuple[EmbeddingInput, ...]:
    if isinstance(value, str) or _is_tokens(value):
        value = [value]
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_INPUTS:
        raise BadRequest(INVALID_INPUT, "input")
    if all(isinstance(item, str) and item for item in value):
        return tuple(value)
    if all(_is_tokens(item) for item in value):
        return tuple(tuple(item) for item in value)
    raise BadRequest(INVALID_INPUT, "input")


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(is_int(t) and t >= 0 for t in value)


def _dimensions(value: Any, max_dimensions: int) -> int:
    if value is None:
        return max_dimensions
    if not is_int(value) or not 1 <= value <= max_dimensions:
        message = f"dimensions must be an integer in [1, {max_dimensions}], got {value!r}."
        raise BadRequest(message, "dimensions")
    return int(value)


def _encoding_format(value: Any) -> str:
    if value is None:
        return "float"
    if value not in FORMATS:
        raise BadRequest(
            f"encoding_format must be 'float' or 'base64', got {value!r}.",
            "encoding_format",
        )
    return str(value)


def _describe(item: EmbeddingInput) -> str:
    return item if isinstance(item, str) else json.dumps(list(item))


def input_tokens(model: str, item: EmbeddingInput) -> int:
    """Tokens of one input: its tiktoken count, or the length of a token array."""
    return count_text(encoding_name(model), item) if isinstance(item, str) else len(item)


def embedding_for(
    item: str | Sequence[int], dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS
) -> list[float]:
    """The vector the simulator returns for ``item`` (a string or token ids), ``dimensions`` long.

    Use it in tests to check what a client received::

        vector = response.data[0].embedding
        assert vector == embedding_for("hello", 256)
    """
    if dimensions < 1:
        raise ValueError(f"dimensions must be at least 1, got {dimensions}")
    key = item if isinstance(item, str) else tuple(item)
    return list(_unit_vector(_material(key), dimensions))


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    """The vector as OpenAI sends it: a list of floats, or base64 of little-endian float32."""
    if encoding_format == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _material(item: EmbeddingInput) -> bytes:
    # Tagged so that the text "[1, 2]" and the tokens [1, 2] have different vectors.
    if isinstance(item, str):
        return b"text:" + item.encode("utf-8")
    return b"tokens:" + ",".join(map(str, item)).encode("ascii")


@functools.lru_cache(maxsize=4096)
def _unit_vector(material: bytes, dimensions: int) -> tuple[float, ...]:
    raw = hashlib.shake_256(material).digest(4 * dimensions)
    values = [n / 2**31 - 1.0 for n in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
    return tuple(array("f", [v / norm for v in values]))  # array("f") rounds to float32
