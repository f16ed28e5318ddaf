"""Make litellm and tiktoken work without a network, before either is imported.

litellm fetches its price map from the internet at import unless told to use the copy it ships,
and tiktoken downloads BPE files on first use. litellm ships cl100k_base, o200k_base and
p50k_base in ``litellm/litellm_core_utils/tokenizers/`` under the names tiktoken caches them by,
so pointing ``TIKTOKEN_CACHE_DIR`` there makes tiktoken fully offline.

Every module of this package that imports litellm or tiktoken imports this module first.
A value the user already set is left alone.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any


def _litellm_tokenizer_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = next(iter(spec.submodule_search_locations))
    path = os.path.join(root, "litellm_core_utils", "tokenizers")
    return path if os.path.isdir(path) else None


def configure() -> None:
    """Set the offline environment variables unless the user has set them."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        folder = _litellm_tokenizer_dir()
        if folder is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = folder


configure()


def litellm() -> Any:
    """Import litellm quietly (offline price map, no debug banner) and return the module."""
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    return _litellm
