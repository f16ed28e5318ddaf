"""Sphinx configuration of the llm-api-client documentation.

Built by CI with warnings as errors: ``python -m sphinx -W -b html docs <out>``. Runnable
examples in the pages are executed by ``tests/test_docs.py`` against the simulator.
"""

from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))  # a clean clone documents its own sources

import llm_api_client

project = "llm-api-client"
author = "llm-api-client contributors"
copyright = "2026, llm-api-client contributors"
release = llm_api_client.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_parser",  # for benchmarks.md, which the benchmark script writes in Markdown
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# A Markdown page written by a script may skip heading levels or link to files outside the
# docs (``../benchmarks/run.py``); neither should fail a warnings-as-errors build.
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "myst.xref_missing"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Defaults as written in the source (``time.monotonic``), not their repr (``<built-in function
# monotonic>``), which Sphinx cannot parse and would print as raw text.
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}
autoclass_content = "class"

html_theme = "furo"
html_title = f"llm-api-client {release}"
pygments_style = "sphinx"

# Python where it lexes, plain text (diagrams) where it does not, without a warning.
highlight_language = "default"


# Docstrings in this project are written for readers of the source first, in a light
# reStructuredText. Two habits would render badly or warn (and warnings fail the build), so the
# docstrings are adjusted as autodoc reads them, without touching the sources:
#
# - an example or a diagram shown as an indented block after a plain paragraph, without the
#   ``::`` that makes it literal: docutils would merge its lines into one block quote;
# - a plural written ````Name````s: an inline literal must end before a word character, so the
#   ``s`` is joined with an escaped space (````Name``\\ s``).
_PLURAL_AFTER_LITERAL = re.compile(r"(``[^`\s](?:[^`]*[^`\s])?``)(?=\w)")
_MARKUP_START = re.compile(r"^([-*+]\s|\d+\.\s|\.\.\s|:\w|>>>|\|)")


def _adjust_docstring(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    out: list[str] = []
    first = last = ""  # the first and last line of the previous prose block
    indent = -1  # the previous prose block's indentation (-1: none yet)
    literal_above = None  # inside a literal block: the indentation of the text introducing it
    after_blank = False
    for line in lines:
        if not line.strip():
            out.append(line)
            after_blank = True
            continue
        depth = len(line) - len(line.lstrip())
        if literal_above is not None and depth <= literal_above:
            literal_above = None
        starts_block = after_blank or indent < 0
        if literal_above is None and starts_block and depth > max(indent, 0):
            if last.rstrip().endswith("::"):
                literal_above = indent
            elif depth >= 4 and _plain_paragraph(first, last, indent):
                out.extend(["::", ""])
                literal_above = indent
        if literal_above is not None:
            out.append(line)
        else:
            if starts_block:
                first, indent = line, depth
            last = line
            out.append(_PLURAL_AFTER_LITERAL.sub(r"\1\\ ", line))
        after_blank = False
    lines[:] = out


def _plain_paragraph(first: str, last: str, indent: int) -> bool:
    """A top-level paragraph of prose, not a list, field, directive or ``::`` introduction."""
    return indent == 0 and not last.rstrip().endswith("::") and not _MARKUP_START.match(first)


# Constructor signatures that say nothing to a reader: every error takes the root's
# ``(message, *, index, **data)``; a ``BatchStream`` is made by ``APIClient.stream``, a
# ``LimiterSnapshot`` by a limiter (its dataclass defaults print as ``<factory>``).
_INTERNAL_SIGNATURES = {"llm_api_client.BatchStream", "llm_api_client.ratelimit.LimiterSnapshot"}


def _hide_internal_signatures(
    app: object,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    is_error = what == "exception" and name != "llm_api_client.errors.LLMAPIClientError"
    if is_error or name in _INTERNAL_SIGNATURES:
        return "", None
    return None


def setup(app: object) -> None:
    app.connect("autodoc-process-docstring", _adjust_docstring)  # type: ignore[attr-defined]
    app.connect("autodoc-process-signature", _hide_internal_signatures)  # type: ignore[attr-defined]
