"""nb_mistral: Mistral's streaming chat API in Jupyter, over a strict, fast SSE client."""

from ._client import Mistral
from ._errors import APIError, MistralError, RequestError, StreamError
from ._eventstream import EventStream, EventStreamAsync
from ._models import (
    AssistantMessage,
    CompletionChunk,
    CompletionEvent,
    SystemMessage,
    ToolMessage,
    UserMessage,
)
from ._sse import ServerSentEvent, SSEDecoder

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AssistantMessage",
    "CompletionChunk",
    "CompletionEvent",
    "EventStream",
    "EventStreamAsync",
    "Mistral",
    "MistralError",
    "RequestError",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamError",
    "SystemMessage",
    "ToolMessage",
    "UserMessage",
]
