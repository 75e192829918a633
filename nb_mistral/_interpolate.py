"""``{name}`` in a prompt: values from the user's namespace, as ``str.format`` would give them.

Only field syntax is evaluated (``name``, ``name.attr``, ``name[key]``, ``In[3]``, ``Out[3]``,
with an optional ``!r`` or ``:spec``), never arbitrary code. Braces that do not name a value are
left as they are, so JSON and code in a prompt pass through; ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}\n]+)\}")
_formatter = string.Formatter()


def interpolate(template: str, namespace: Mapping[str, Any]) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        try:
            return _format_field(match.group(1), namespace)
        except Exception:
            return token

    return _FIELD.sub(substitute, template)


def _format_field(field: str, namespace: Mapping[str, Any]) -> str:
    ((_, name, spec, conversion),) = _formatter.parse("{" + field + "}")
    if not name or not (name[0].isalpha() or name[0] == "_"):
        raise KeyError(field)
    value, _ = _formatter.get_field(name, (), namespace)
    value = _formatter.convert_field(value, conversion)
    return str(_formatter.format_field(value, spec or ""))
