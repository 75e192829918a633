"""Structured output: ``response_format=`` as a Pydantic model class or a JSON schema, and the
reply's text read back into an object.

The request carries ``{"type": "json_schema", "json_schema": {"name", "schema", "strict":
true}}``; a model's schema is made strict (no extra properties on any object) as the official
SDK does, so the server holds the model to exactly the fields the class has.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ._models import AssistantMessage, ChatCompletionChoice, ChatCompletionResponse, text_of

T = TypeVar("T", bound=BaseModel)

ResponseFormatLike = type[BaseModel] | Mapping[str, Any]


def strict_schema(node: Any) -> Any:
    """A copy of a JSON schema with ``additionalProperties: false`` on every object."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    strict = {key: strict_schema(value) for key, value in node.items()}
    if strict.get("type") == "object":
        strict["additionalProperties"] = False
    return strict


def is_model_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def response_format_of(value: Any) -> Any:
    """The ``response_format`` request field for a model class, a bare JSON schema, or an
    already complete response format (``{"type": ...}``, passed as it is)."""
    if value is None:
        return None
    if is_model_class(value):
        return _json_schema_format(value.__name__, value.model_json_schema())
    if isinstance(value, BaseModel):  # a ResponseFormat-like model instance
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        if "type" in value and value.get("type") in ("json_schema", "json_object", "text"):
            return copy.deepcopy(dict(value))
        name = value.get("title") if isinstance(value.get("title"), str) else "response"
        return _json_schema_format(str(name), dict(value))
    raise TypeError(
        "response_format must be a Pydantic model class or a JSON schema dict, "
        f"not {type(value).__name__}"
    )


def _json_schema_format(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The wire form; the name keeps to letters, digits, ``_`` and ``-`` (a generic model's
    ``Page[Item]`` becomes ``Page_Item_``), as schema names must."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "response"
    return {
        "type": "json_schema",
        "json_schema": {"name": safe, "schema": strict_schema(schema), "strict": True},
    }


@dataclass(frozen=True)
class Structure:
    """What a request asked the reply to be: the wire format, and the class to validate into
    (None for a JSON schema given as a dict: the decoded JSON is the parsed value)."""

    response_format: dict[str, Any]
    model: type[BaseModel] | None

    @classmethod
    def of(cls, value: Any) -> Structure | None:
        """None for no ``response_format`` or for plain text."""
        response_format = response_format_of(value)
        if not isinstance(response_format, dict) or response_format.get("type") == "text":
            return None
        return cls(response_format, value if is_model_class(value) else None)

    def parse(self, text: str) -> tuple[Any, str | None]:
        """``(parsed, None)``, or ``(None, why not)``: the text never raises."""
        if not text.strip():
            return None, "the reply has no text to parse"
        if self.model is not None:
            try:
                return self.model.model_validate_json(text), None
            except ValidationError as exc:
                return None, _short(exc)
        try:
            return json.loads(text), None
        except ValueError as exc:
            return None, f"the reply is not valid JSON: {exc}"


def _short(exc: ValidationError) -> str:
    """Pydantic's message without the input (the model's text, possibly long) repeated."""
    lines = [f"{exc.error_count()} validation error(s) for {exc.title}"]
    for error in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "(the whole reply)"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def structured_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], Structure | None]:
    """For callers such as ``map``: the options with ``response_format`` in its wire form, and
    the ``Structure`` to parse each reply with (``reply.set_parsed(*structure.parse(text))``)."""
    wire = dict(options)
    structure = Structure.of(wire.get("response_format"))
    if structure is not None:
        wire["response_format"] = structure.response_format
    return wire, structure


# -- chat.parse: the official SDK's shape --------------------------------------------------


class ParsedAssistantMessage(AssistantMessage, Generic[T]):
    parsed: T | None = None


class ParsedChatCompletionChoice(ChatCompletionChoice, Generic[T]):
    message: ParsedAssistantMessage[T]


class ParsedChatCompletionResponse(ChatCompletionResponse, Generic[T]):
    """``chat.parse``'s answer: ``.choices[i].message.parsed`` is the validated object."""

    choices: list[ParsedChatCompletionChoice[T]]  # type: ignore[assignment]


def parsed_completion(
    response: ChatCompletionResponse, model: type[T]
) -> ParsedChatCompletionResponse[T]:
    """Each choice's text validated into ``model`` (a reply that does not fit raises pydantic's
    ``ValidationError``, as in the official SDK); a choice without text parses to None."""
    choices = []
    for choice in response.choices:
        text = text_of(choice.message.content)
        parsed = model.model_validate_json(text) if text else None
        message = ParsedAssistantMessage[model](  # type: ignore[valid-type]
            **choice.message.model_dump(), parsed=parsed
        )
        choices.append(
            ParsedChatCompletionChoice[model](  # type: ignore[valid-type]
                index=choice.index, message=message, finish_reason=choice.finish_reason
            )
        )
    fields = response.model_dump(exclude={"choices"})
    return ParsedChatCompletionResponse[model](  # type: ignore[valid-type]
        **fields, choices=choices
    )
