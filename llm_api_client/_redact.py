"""Redaction of secrets: API keys and auth headers never reach a log, an exception or a file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Header and parameter names whose values are credentials (compared lowercased).
SECRET_KEYS = frozenset(
    {
        "api_key",
        "api-key",
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "openai-api-key",
        "anthropic-api-key",
        "azure_ad_token",
        "aws_secret_access_key",
        "aws_session_token",
        "vertex_credentials",
        "client_secret",
        "password",
        "token",
        "cookie",
        "set-cookie",
    }
)

# Bearer tokens and the common key shapes (sk-..., sk-ant-..., AIza...) inside free text.
_SECRET_PATTERNS = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{4,}"
    r"|\bsk-[A-Za-z0-9_\-]{6,}"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|((?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
)

# The user-info of a URL (``scheme://user:password@host``) is a credential wherever it appears:
# litellm sends it as basic auth. Greedy up to the last "@" before the path, as URL parsers
# read an unescaped "@" in a password.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]+@")

_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a credential seen in a request so free text containing it is redacted too."""
    if value and isinstance(value, str) and len(value) >= 4:
        _extra_secrets.add(value)


def is_secret_key(name: str) -> bool:
    return name.lower() in SECRET_KEYS


def redact_text(text: str) -> str:
    """Return ``text`` with anything that looks like a credential replaced by ``[REDACTED]``."""
    if not text:
        return text
    for secret in _extra_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SECRET_PATTERNS.sub(_replace, redact_url(text))


def redact_url(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced: ``http://[REDACTED]@host/v1``."""
    if "@" not in text:
        return text  # the common case, without a regex scan
    return _URL_USERINFO.sub(rf"\1{REDACTED}@", text)


def _replace(match: re.Match[str]) -> str:
    prefix = match.group(1) or match.group(2) or ""
    return f"{prefix}{REDACTED}"


def redact_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """A plain-dict copy of ``headers`` with credential values replaced."""
    return {
        str(k): (REDACTED if is_secret_key(str(k)) else redact_text(str(v)))
        for k, v in dict(headers).items()
    }


def redact_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of a request dict safe to log or store: credentials replaced.

    Credential parameters and auth headers are replaced whole; a URL-valued parameter
    (``api_base``, ``base_url``, ...) keeps its URL without the user-info.
    """
    out: dict[str, Any] = {}
    for key, value in request.items():
        if is_secret_key(key):
            out[key] = REDACTED
        elif key in ("extra_headers", "headers") and isinstance(value, Mapping):
            out[key] = redact_headers(value)
        elif isinstance(value, str):
            out[key] = redact_url(value)
        else:
            out[key] = value
    return out
