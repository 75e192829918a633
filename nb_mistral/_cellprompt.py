"""What ``%%mistral`` sends from a cell: the prompt with its context (images, tables, errors),
and ``--schema`` / ``--tools`` looked up in the user's namespace.

Kept out of the magic so that the magic stays about options and display.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errorlog import ErrRef
from ._interpolate import Interpolated, interpolate_context
from ._structured import is_model_class


class NamespaceError(ValueError):
    """An option names something the namespace does not hold, or the wrong kind of thing."""


def cell_prompt(
    cell: str, namespace: Mapping[str, Any], *, raw: bool, max_chars: int, errors: ErrRef
) -> tuple[dict[str, Any], str | None]:
    """The user message of a cell, and one line about fields left as written (or None)."""
    if raw:
        prompt = Interpolated(parts=[cell])
    else:
        prompt = interpolate_context(cell, namespace, max_chars=max_chars, errors=errors)
    content = prompt.content()
    if isinstance(content, str):
        content = content.strip("\n")
    return {"role": "user", "content": content}, prompt.note()


def schema_option(name: str | None, namespace: Mapping[str, Any]) -> Any:
    """``--schema NAME``: a Pydantic model class (or a JSON schema dict) in the namespace."""
    if not name:
        return None
    value = namespace.get(name)
    if is_model_class(value) or isinstance(value, Mapping):
        return value
    if value is None:
        raise NamespaceError(f"--schema {name}: no such name in the notebook")
    raise NamespaceError(
        f"--schema {name}: a Pydantic model class or a JSON schema dict is needed, "
        f"not {type(value).__name__}"
    )


def tools_option(names: str | None, namespace: Mapping[str, Any]) -> list[Any] | None:
    """``--tools f,g``: the functions of these names in the namespace."""
    if not names:
        return None
    functions = []
    for name in (part.strip() for part in names.split(",")):
        if not name:
            continue
        value = namespace.get(name)
        if not callable(value):
            what = "no such name" if value is None else f"a {type(value).__name__}, not a function"
            raise NamespaceError(f"--tools: {name} is {what}")
        functions.append(value)
    return functions
