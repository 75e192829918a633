"""Pydantic models of the chat API's wire format: what the server streams and what we send.

Unknown fields are ignored everywhere (the API grows), except on ``UsageInfo``, which keeps
them because new usage counters are worth showing.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from ._fastpath import report_finish


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextChunk(_Model):
    type: Literal["text"] = "text"
    text: str


class ThinkChunk(_Model):
    """Reasoning text of a reasoning model (``magistral-*``), kept apart from the answer."""

    type: Literal["thinking"] = "thinking"
    thinking: list[TextChunk] = Field(default_factory=list)
    closed: bool | None = None


class OtherChunk(BaseModel):
    """A content chunk of a type this package does not know (image, reference, ...): kept whole."""

    model_config = ConfigDict(extra="allow")
    type: str


def _chunk_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("text", "thinking") else "other"


ContentChunk = Annotated[
    Annotated[TextChunk, Tag("text")]
    | Annotated[ThinkChunk, Tag("thinking")]
    | Annotated[OtherChunk, Tag("other")],
    Discriminator(_chunk_kind),
]
Content = str | list[ContentChunk]


def text_of(content: Content | None) -> str:
    """The answer text of a message or delta content (thinking left out)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(chunk.text for chunk in content if isinstance(chunk, TextChunk))


def thinking_of(content: Content | None) -> str:
    """The reasoning text of a message or delta content."""
    if content is None or isinstance(content, str):
        return ""
    return "".join(
        part.text for chunk in content if isinstance(chunk, ThinkChunk) for part in chunk.thinking
    )


class FunctionCall(_Model):
    name: str = ""
    arguments: str | dict[str, Any] = ""


class ToolCall(_Model):
    id: str | None = None
    type: str | None = "function"
    function: FunctionCall
    index: int | None = None


class DeltaMessage(_Model):
    role: str | None = None
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None

    @property
    def text(self) -> str:
        return text_of(self.content)

    @property
    def thinking(self) -> str:
        return thinking_of(self.content)


class CompletionResponseStreamChoice(_Model):
    index: int = 0
    delta: DeltaMessage
    # Only a non-null reason reaches the validator: null costs nothing.
    finish_reason: Annotated[str, AfterValidator(report_finish)] | None = None


class UsageInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class CompletionChunk(_Model):
    """One streamed chunk: the ``data`` of one server-sent event."""

    id: str
    model: str
    choices: list[CompletionResponseStreamChoice]
    object: str | None = None
    created: int | None = None
    usage: UsageInfo | None = None


class CompletionEvent(_Model):
    """One server-sent event of a chat stream."""

    # Validated with a FinishSeen context, events report their finish reasons into it.
    reports_finish: ClassVar[bool] = True

    data: CompletionChunk

    @property
    def is_final(self) -> bool:
        """Whether this event carries a finish reason, so the reply is complete."""
        return any(choice.finish_reason is not None for choice in self.data.choices)


# Messages we send. Each is also accepted as a plain dict {"role", "content"}.


class SystemMessage(_Model):
    content: Content
    role: Literal["system"] = "system"


class UserMessage(_Model):
    content: Content
    role: Literal["user"] = "user"


class AssistantMessage(_Model):
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None
    prefix: bool | None = None
    role: Literal["assistant"] = "assistant"


class ToolMessage(_Model):
    content: Content | None = None
    tool_call_id: str | None = None
    name: str | None = None
    role: Literal["tool"] = "tool"


Message = SystemMessage | UserMessage | AssistantMessage | ToolMessage


class ChatCompletionChoice(_Model):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = None


class ChatCompletionResponse(_Model):
    """The answer of ``chat.complete``: the whole reply at once."""

    id: str
    model: str
    choices: list[ChatCompletionChoice]
    object: str | None = None
    created: int | None = None
    usage: UsageInfo | None = None


class ModelCard(_Model):
    """One model of the server's list (``client.models.list().data``)."""

    id: str
    object: str | None = None
    owned_by: str | None = None
    name: str | None = None
    description: str | None = None
    max_context_length: int | None = None


class ModelList(_Model):
    """The answer of ``client.models.list()``."""

    object: str | None = None
    data: list[ModelCard] = Field(default_factory=list)
