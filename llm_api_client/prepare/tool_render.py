"""Tool definitions rendered as text, the way OpenAI shows them to the model.

OpenAI renders function definitions in a TypeScript-like ``namespace functions { ... }`` block
that the model reads as part of its prompt; litellm's token counter renders the same text, and
so do we, so that tool definitions are counted as the tokens they cost.

Example::

    >>> print(format_function_definitions([{"name": "now"}]))
    namespace functions {
    <BLANKLINE>
    type now = () => any;
    <BLANKLINE>
    } // namespace functions
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["format_function_definitions"]


def format_function_definitions(tools: Sequence[Any]) -> str:
    """The ``namespace functions { ... }`` text OpenAI prepends for tool definitions."""
    lines = ["namespace functions {", ""]
    for function in _function_definitions(tools):
        lines.extend(_format_function(function))
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _function_definitions(tools: Sequence[Any]) -> Iterable[Mapping[str, Any]]:
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        if isinstance(function, Mapping):
            yield function
        else:  # a bare function definition (Anthropic-style or legacy)
            parameters = tool.get("input_schema") or tool.get("parameters") or {}
            yield {"name": tool.get("name"), "description": tool.get("description"),
                   "parameters": parameters}  # fmt: skip


def _format_function(function: Mapping[str, Any]) -> list[str]:
    name = function.get("name")
    if not name:
        return []
    description = function.get("description")
    lines = [f"// {description}"] if description else []
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
    if isinstance(properties, Mapping) and properties:
        lines += [f"type {name} = (_: {{", _format_object(parameters, 0), "}) => any;", ""]
    else:
        lines += [f"type {name} = () => any;", ""]
    return lines


def _format_object(parameters: Mapping[str, Any], indent: int) -> str:
    properties = parameters.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return ""
    required = parameters.get("required")
    required_names = tuple(required) if isinstance(required, list) else ()
    lines = []
    for key, props in properties.items():
        description = props.get("description") if isinstance(props, Mapping) else None
        if description:
            lines.append(f"// {description}")
        optional = "" if key in required_names else "?"
        lines.append(f"{key}{optional}: {_format_type(props, indent)},")
    return "\n".join(" " * max(0, indent) + line for line in lines)


_SCALAR_TYPES: dict[Any, str] = {"boolean": "boolean", "null": "null"}


def _format_type(props: Any, indent: int) -> str:
    if not isinstance(props, Mapping):
        return "any"
    kind, enum = props.get("type"), props.get("enum")
    if kind in ("string", "integer", "number") and isinstance(enum, list):
        return " | ".join(f'"{item}"' for item in enum)
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "array":
        return f"{_format_type(props.get('items'), indent)}[]"
    if kind == "object":
        return f"{{\n{_format_object(props, indent + 2)}\n}}"
    return _SCALAR_TYPES.get(kind, "any")
