"""``{name}`` in a prompt: values from the user's namespace, as ``str.format`` would give them.

Only field syntax is evaluated (``name``, ``name.attr``, ``name[key]``, ``In[3]``, ``Out[3]``,
with an optional ``!r`` or ``:spec``), never arbitrary code. Braces that do not name a value are
left as they are, so JSON and code in a prompt pass through; ``{{`` and ``}}`` are literal braces.

Some values are context rather than text: an image becomes an image chunk of the message, a
DataFrame / Series / array a bounded table (``{df:all}`` every row), ``{Err}`` / ``{Err[n]}``
an exception's traceback. A name that does not resolve is left as written and reported, so a
typo is never silent.
"""

from __future__ import annotations

import difflib
import re
import string
from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from ._errorlog import CellError, ErrRef
from ._images import ContextError, image_chunk, is_image
from ._tables import DEFAULT_MAX_CHARS, describe_table, is_table

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}\n]+)\}")
# what reads as a reference to a value, so that failing to resolve it is worth a word
_NAME_LIKE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]]+\])*(?:![rsa])?(?::[^{}]*)?")
_formatter = string.Formatter()


def interpolate(template: str, namespace: Mapping[str, Any]) -> str:
    """The prompt as text (values as ``str.format`` gives them)."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        try:
            return _format_field(match.group(1), namespace)
        except Exception:
            return token

    return _FIELD.sub(substitute, template)


@dataclass
class Interpolated:
    """A prompt with its context: text and image chunks in order, and what did not resolve."""

    parts: list[str | dict[str, Any]] = field(default_factory=list)
    unresolved: list[tuple[str, str]] = field(default_factory=list)  # (field, why)

    @property
    def images(self) -> int:
        return sum(1 for part in self.parts if isinstance(part, dict))

    def content(self) -> str | list[dict[str, Any]]:
        """The user message's content: a string, or text and image chunks when there are
        images."""
        if not self.images:
            return "".join(str(part) for part in self.parts)
        chunks: list[dict[str, Any]] = []
        for part in self.parts:
            if isinstance(part, dict):
                chunks.append(part)
            elif part.strip():
                chunks.append({"type": "text", "text": part})
        return chunks

    def note(self) -> str | None:
        """One line naming the fields left as written, or None."""
        if not self.unresolved:
            return None
        listed = "; ".join(f"{{{name}}}: {why}" for name, why in self.unresolved)
        return f"nb_mistral: left as written in the prompt: {listed}"


def interpolate_context(
    template: str,
    namespace: Mapping[str, Any],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    errors: ErrRef | None = None,
) -> Interpolated:
    """The prompt with values, images, tables and exceptions in place (a ``ContextError`` for
    context that cannot be sent, before anything is)."""
    out = Interpolated()
    text: list[str] = []
    position = 0
    for match in _FIELD.finditer(template):
        text.append(template[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            text.append(token[0])
            continue
        spec = match.group(1)
        try:
            value = _resolve(spec, namespace, errors)
            rendered = None if is_image(value) else _render(value, spec, max_chars)
        except ContextError:
            raise
        except Exception as exc:
            text.append(token)
            if _NAME_LIKE.fullmatch(spec):
                out.unresolved.append((spec, _why(spec, exc, namespace)))
            continue
        if rendered is None:
            out.parts += ["".join(text), image_chunk(value)]
            text = []
        else:
            text.append(rendered)
    text.append(template[position:])
    out.parts.append("".join(text))
    return out


def context_content(
    items: Sequence[Any], *, max_chars: int = DEFAULT_MAX_CHARS
) -> str | list[dict[str, Any]]:
    """A prompt given as a list of text and context (``["What does this show?", fig]``): text
    as it is, images as image chunks, tables described, anything else as ``str``."""
    out = Interpolated()
    for item in items:
        if isinstance(item, str) and not is_image(item):
            out.parts.append(item)
        elif is_image(item):
            out.parts.append(image_chunk(item))
        elif is_table(item):
            out.parts.append(describe_table(item, max_chars=max_chars))
        else:
            out.parts.append(str(item))
    texts = [part for part in out.parts if isinstance(part, str)]
    if len(texts) == len(out.parts):
        return "\n\n".join(texts)
    return out.content()


def _resolve(spec: str, namespace: Mapping[str, Any], errors: ErrRef | None) -> Any:
    ((_, name, _, _),) = _formatter.parse("{" + spec + "}")
    if not name or not (name[0].isalpha() or name[0] == "_"):
        raise KeyError(spec)
    scope: Mapping[str, Any] = namespace
    if errors is not None:  # a variable of the user's named Err comes first
        scope = ChainMap(cast(MutableMapping[str, Any], namespace), {"Err": errors})
    value, _ = _formatter.get_field(name, (), scope)
    if isinstance(value, ErrRef):
        value = value.latest()
    return value


def _render(value: Any, spec: str, max_chars: int) -> str:
    ((_, name, format_spec, conversion),) = _formatter.parse("{" + spec + "}")
    if isinstance(value, CellError):
        return value.text(max_chars)
    if is_table(value) and not conversion:
        return describe_table(
            value, max_chars=max_chars, all_rows=format_spec == "all", name=name or ""
        )
    value = _formatter.convert_field(value, conversion)
    return str(_formatter.format_field(value, format_spec or ""))


def _why(spec: str, error: Exception, namespace: Mapping[str, Any]) -> str:
    name = re.match(r"[A-Za-z_]\w*", spec)
    root = name.group(0) if name else spec
    if isinstance(error, KeyError) and root not in namespace and root != "Err":
        close = difflib.get_close_matches(root, [k for k in namespace if not k.startswith("_")])
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"no variable named {root}{hint}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _format_field(field: str, namespace: Mapping[str, Any]) -> str:
    ((_, name, spec, conversion),) = _formatter.parse("{" + field + "}")
    if not name or not (name[0].isalpha() or name[0] == "_"):
        raise KeyError(field)
    value, _ = _formatter.get_field(name, (), namespace)
    value = _formatter.convert_field(value, conversion)
    return str(_formatter.format_field(value, spec or ""))
