"""What a chat request carries: the messages, and the documented request fields as a
``TypedDict`` (``ChatOptions``) so that ``**options`` is checked by type checkers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypedDict

from pydantic import BaseModel

from ._models import Message

MessageLike = Message | Mapping[str, Any]


class ChatOptions(TypedDict, total=False):
    """The request fields of ``/v1/chat/completions`` besides ``model`` and ``messages``.

    An option given as None is left out of the request. Fields the API adds later can be
    passed too (they go into the body as they are); type checkers only know these.
    """

    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: str | list[str] | None
    random_seed: int | None
    response_format: Mapping[str, Any] | BaseModel | type[BaseModel] | None
    tools: Sequence[Mapping[str, Any] | Callable[..., Any]] | None
    tool_choice: Literal["auto", "none", "any", "required"] | Mapping[str, Any] | None
    presence_penalty: float | None
    frequency_penalty: float | None
    n: int | None
    parallel_tool_calls: bool | None
    prediction: Mapping[str, Any] | None
    prompt_mode: Literal["reasoning"] | None
    reasoning_effort: str | None
    safe_prompt: bool | None


def message_dict(message: MessageLike) -> dict[str, Any]:
    """A message as the JSON the API takes; models and plain dicts are both accepted."""
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json", exclude_none=True)
    if isinstance(message, Mapping):
        return dict(message)
    raise TypeError(f"a message must be a message model or a dict, not {type(message).__name__}")


def chat_body(
    model: str, messages: Iterable[MessageLike], stream: bool, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body of a chat request; options that are None are left out. A model class
    or bare schema as ``response_format``, and functions among ``tools``, take their wire form."""
    from ._structured import response_format_of
    from ._tools import tool_specs

    body: dict[str, Any] = {"model": model, "messages": [message_dict(m) for m in messages]}
    for name, value in options.items():
        if value is None:
            continue
        if name == "response_format":
            value = response_format_of(value)
        elif name == "tools":
            value = tool_specs(value)
        body[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    body["stream"] = stream
    return body
