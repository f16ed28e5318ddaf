"""Make litellm and tiktoken work without a network, before either is imported.

tiktoken downloads BPE files on first use. litellm ships cl100k_base, o200k_base and p50k_base
in ``litellm/litellm_core_utils/tokenizers/`` under the names tiktoken caches them by, so
pointing ``TIKTOKEN_CACHE_DIR`` there makes tiktoken fully offline.

Prices are litellm's choice, and the user's: at import litellm fetches the current price map
unless ``LITELLM_LOCAL_MODEL_COST_MAP=True`` tells it to use the copy it ships. This package sets
that variable only when asked (``LLM_API_CLIENT_LOCAL_PRICES=1``), and, when the current map's
host cannot be reached within ``PRICE_MAP_PROBE_SECONDS``, only for its own import of litellm
(then removes it), so litellm does not wait out its own timeout offline. Which map is in use:
``providers.pricing.price_map()``.

Every module of this package that imports litellm or tiktoken imports this module first.
A value the user already set is left alone.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from llm_api_client._constants import PRICE_MAP_PROBE_SECONDS

# Set to 1 (true, yes) to price with the map the installed litellm ships, never fetching one.
LOCAL_PRICES = "LLM_API_CLIENT_LOCAL_PRICES"
LITELLM_LOCAL = "LITELLM_LOCAL_MODEL_COST_MAP"
_DEFAULT_PRICE_MAP_URL = (
    "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
)

# Why this package made litellm load its bundled map at import, when it did.
bundled_because: str | None = None


def _litellm_tokenizer_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = next(iter(spec.submodule_search_locations))
    path = os.path.join(root, "litellm_core_utils", "tokenizers")
    return path if os.path.isdir(path) else None


def configure() -> None:
    """Set the offline environment variables unless the user has set them."""
    if _truthy(os.environ.get(LOCAL_PRICES)):
        os.environ.setdefault(LITELLM_LOCAL, "True")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        folder = _litellm_tokenizer_dir()
        if folder is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = folder


def litellm() -> Any:
    """Import litellm quietly (no debug banner, no wait for an unreachable price map)."""
    if "litellm" not in sys.modules:
        _import_litellm()
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    return _litellm


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _import_litellm() -> None:
    """Import litellm; with the bundled prices if the current ones cannot be had quickly."""
    global bundled_because
    if os.environ.get(LITELLM_LOCAL) is not None or _price_map_reachable():
        import litellm

        return
    bundled_because = f"the current price map was not reachable within {PRICE_MAP_PROBE_SECONDS} s"
    os.environ[LITELLM_LOCAL] = "True"
    try:
        import litellm  # noqa: F401
    finally:
        del os.environ[LITELLM_LOCAL]  # the user's process keeps litellm's own choice


def _price_map_reachable() -> bool:
    url = urlsplit(os.environ.get("LITELLM_MODEL_COST_MAP_URL", _DEFAULT_PRICE_MAP_URL))
    if url.scheme not in ("http", "https") or not url.hostname:
        return True  # a file or a bucket: litellm knows how to read it
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PRICE_MAP_PROBE_SECONDS).close()
    except OSError:
        return False
    return True


configure()
