"""Image tokens by OpenAI's tile rule, reading the size from an inline image's header.

OpenAI's vision guide ("Calculating costs"): 85 tokens, plus 170 per 512-px tile after fitting
into 2048x2048 and scaling the short side to 768. The size is read from a base64 ``data:`` URL
(PNG, GIF and JPEG headers, only the first bytes decoded); otherwise ``detail="low"`` costs 85
and anything else is estimated at 765, the cost of a 1024x1024 image (we never download an
image to measure it).

Example::

    >>> image_tiles(1024, 1024)
    4
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping
from typing import Any

from llm_api_client._constants import (
    IMAGE_BASE_TOKENS,
    IMAGE_TILE_TOKENS,
    IMAGE_UNKNOWN_SIZE_TOKENS,
)

__all__ = ["image_tiles", "image_tokens"]


def image_tokens(image_url: Any) -> int:
    """Tokens of one ``image_url`` part: tile rule when the size is readable, else an estimate."""
    if isinstance(image_url, Mapping):
        detail, url = image_url.get("detail") or "auto", image_url.get("url") or ""
    else:
        detail, url = "auto", str(image_url or "")
    if detail == "low":
        return IMAGE_BASE_TOKENS
    size = _inline_image_size(url) if isinstance(url, str) else None
    if size is None:
        return IMAGE_UNKNOWN_SIZE_TOKENS
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * image_tiles(*size)


def image_tiles(width: int, height: int) -> int:
    """512-px tiles of an image after OpenAI's high-detail resize (fit 2048, short side 768)."""
    fit = min(1.0, 2048 / max(width, height))
    shorten = min(1.0, 768 / (min(width, height) * fit))
    scaled_w = max(1, math.floor(width * fit * shorten))
    scaled_h = max(1, math.floor(height * fit * shorten))
    return math.ceil(scaled_w / 512) * math.ceil(scaled_h / 512)


# Enough base64 to reach a JPEG's frame header in ordinary files, yet cheap to decode.
_IMAGE_HEADER_BASE64_CHARS = 65_536


def _inline_image_size(url: str) -> tuple[int, int] | None:
    """Width and height of a base64 ``data:`` image (PNG, GIF, JPEG), or None."""
    comma = url.find(",", 0, 256)
    if not url.startswith("data:image/") or comma < 0 or not url[:comma].endswith(";base64"):
        return None
    encoded = url[comma + 1 : comma + 1 + _IMAGE_HEADER_BASE64_CHARS]
    encoded = encoded[: len(encoded) - len(encoded) % 4]
    try:
        return _image_size(base64.b64decode(encoded))
    except (ValueError, struct.error, IndexError):
        return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        width, height = struct.unpack(">II", data[16:24])
    elif data[:4] == b"GIF8":
        width, height = struct.unpack("<HH", data[6:10])
    elif data[:3] == b"\xff\xd8\xff":
        return _jpeg_size(data)
    else:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        length = struct.unpack(">H", data[position + 2 : position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return (width, height) if width > 0 and height > 0 else None
        position += 2 + length
    return None
