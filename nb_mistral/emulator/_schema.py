"""Deterministic JSON that validates against a JSON schema: the emulator's structured output
and tool-call arguments.

It covers what Pydantic models produce: objects (every property, as strict mode requires),
arrays with their item bounds, enums and consts, strings with lengths and common formats,
numbers with their bounds, ``anyOf`` / ``oneOf`` / ``allOf``, nullable types and ``$ref``
into ``$defs``. Recursive schemas end: past a depth, optional branches are left empty or null.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_MAX_DEPTH = 6
_FORMATS = {
    "date-time": "2024-01-02T03:04:05Z",
    "date": "2024-01-02",
    "time": "03:04:05",
    "email": "someone@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "12345678-1234-5678-1234-567812345678",
    "duration": "P1D",
    "ipv4": "192.0.2.1",
}


class _Example:
    def __init__(self, root: Mapping[str, Any], words: Sequence[str], prompt: str) -> None:
        self.root = root
        self.words = list(words)
        self.mentioned = {word.lower() for word in re.findall(r"[^\W_]+", prompt)}
        self.strings = 0  # strings made so far: picks the next word
        self.variant = 0  # the n-th distinct item of a uniqueItems array

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < 20:
            target: Any = self.root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            extra = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **extra} if isinstance(target, Mapping) else extra
            seen += 1
        return schema

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return None if schema is False else f"example {name}"
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            named = [v for v in enum if isinstance(v, str) and v.lower() in self.mentioned]
            return named[0] if named and not self.variant else enum[self.variant % len(enum)]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self.value(self._pick(options, depth), name, depth)
        merged = self._merge_all_of(schema)
        kind = self._kind(merged, depth)
        if kind == "object":
            return self.object(merged, depth)
        if kind == "array":
            return self.array(merged, name, depth)
        if kind == "integer":
            return self.integer(merged)
        if kind == "number":
            return self.number(merged)
        if kind == "boolean":
            return self.variant % 2 == 0
        if kind == "null":
            return None
        return self.string(merged, name)

    def _pick(self, options: list[Any], depth: int) -> Any:
        def is_null(option: Any) -> bool:
            return isinstance(option, Mapping) and option.get("type") == "null"

        concrete = [option for option in options if not is_null(option)]
        if depth >= _MAX_DEPTH and len(concrete) < len(options):
            return {"type": "null"}
        return concrete[0] if concrete else options[0]

    def _merge_all_of(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema.get("allOf") or ():
            if isinstance(part, Mapping):
                part = self.resolve(part)
                for key, value in part.items():
                    if key == "properties" and isinstance(value, Mapping):
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif key == "required" and isinstance(value, list):
                        merged["required"] = [*merged.get("required", []), *value]
                    else:
                        merged.setdefault(key, value)
        return merged

    def _kind(self, schema: Mapping[str, Any], depth: int) -> str | None:
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [k for k in kind if k != "null"]
            if depth >= _MAX_DEPTH and "null" in kind:
                return "null"
            kind = concrete[0] if concrete else "null"
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema:
                return "object"
            if "items" in schema or "prefixItems" in schema:
                return "array"
        return kind if isinstance(kind, str) else None

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        out: dict[str, Any] = {}
        required = set(schema.get("required") or ())
        if isinstance(properties, Mapping):
            for key, sub in properties.items():
                if depth >= _MAX_DEPTH and key not in required:
                    continue
                out[str(key)] = self.value(sub, str(key), depth + 1)
        extra = schema.get("additionalProperties")
        if not out and isinstance(extra, Mapping) and depth < _MAX_DEPTH:
            key = self.words[0] if self.words else "key"
            out[key] = self.value(extra, key, depth + 1)
        return out

    def array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), max(low, 2))
        count = low if depth >= _MAX_DEPTH else min(max(2, low), high)
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        out: list[Any] = []
        unique = bool(schema.get("uniqueItems"))
        outer = self.variant
        for index in range(count):
            self.variant = index if unique else outer
            if isinstance(prefix, list) and index < len(prefix):
                out.append(self.value(prefix[index], name, depth + 1))
            else:
                out.append(self.value(items, name, depth + 1))
        self.variant = outer
        if isinstance(prefix, list) and len(out) < len(prefix) and depth < _MAX_DEPTH:
            out += [self.value(sub, name, depth + 1) for sub in prefix[len(out) :]]
        return out

    def integer(self, schema: Mapping[str, Any]) -> int:
        low, high = _bounds(schema)
        value = 1
        if low is not None:
            value = max(value, math.floor(low) + 1 if _exclusive_low(schema) else math.ceil(low))
        if high is not None:
            top = math.ceil(high) - 1 if _exclusive_high(schema) else math.floor(high)
            value = min(value, top)
        step = schema.get("multipleOf")
        step = step if isinstance(step, int) and step > 0 else 1
        if value % step:
            value += step - value % step
        value += self.variant * step
        if high is not None and value > high:
            value -= 2 * self.variant * step  # the other way from the bound
        return value

    def number(self, schema: Mapping[str, Any]) -> float:
        low, high = _bounds(schema)
        value = 1.5 + self.variant
        if low is not None and value <= low:
            value = float(low) + (1.0 if high is None else (float(high) - float(low)) / 2)
            if not _exclusive_low(schema) and high is None:
                value = float(low)
        if high is not None and value >= high:
            value = float(high) - (0.5 if low is None else (float(high) - float(low)) / 2)
            if not _exclusive_high(schema) and low is None:
                value = float(high)
        return value

    def string(self, schema: Mapping[str, Any], name: str) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        lowered = name.lower()
        if "city" in lowered or "location" in lowered:
            text = "Paris"
        elif self.words:
            text = self.words[self.strings % len(self.words)]
            self.strings += 1
        else:
            text = f"example {name}"
        if self.variant:
            text += f" {self.variant + 1}"
        low = _int(schema.get("minLength"), 0)
        high = _int(schema.get("maxLength"), max(low, len(text)))
        while len(text) < low:
            text += " " + text
        return text[: max(high, low)]


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None]:
    def num(key: str) -> float | None:
        value = schema.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value if ok else None

    low, high = num("minimum"), num("maximum")
    low = num("exclusiveMinimum") if num("exclusiveMinimum") is not None else low
    high = num("exclusiveMaximum") if num("exclusiveMaximum") is not None else high
    return low, high


def _exclusive_low(schema: Mapping[str, Any]) -> bool:
    return isinstance(schema.get("exclusiveMinimum"), (int, float))


def _exclusive_high(schema: Mapping[str, Any]) -> bool:
    return isinstance(schema.get("exclusiveMaximum"), (int, float))


def example(
    schema: Any, *, words: Sequence[str] = (), name: str = "value", prompt: str = ""
) -> Any:
    """A value valid for ``schema``; strings are taken in turn from ``words`` (the prompt's),
    and of an enum the first value the ``prompt`` mentions."""
    root = schema if isinstance(schema, Mapping) else {}
    return _Example(root, words, prompt).value(schema, name, 0)


def structured_text(response_format: Any, keywords: Sequence[str], prompt: str) -> str | None:
    """The reply to a ``json_schema`` (or ``json_object``) response format: deterministic JSON
    valid for the schema, its strings taken from the prompt's keywords; None for text."""
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return json.dumps({"emulated": True, "keywords": list(keywords)}, ensure_ascii=False)
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    value = example(schema if isinstance(schema, Mapping) else {}, words=keywords, prompt=prompt)
    return json.dumps(value, ensure_ascii=False, indent=2)
