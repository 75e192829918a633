"""nb_mistral: Mistral's streaming chat API in Jupyter, over a strict, fast SSE client."""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ._api import astream, show, stream
    from ._reply import Reply
    from ._widgets import ChatWidget

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AssistantMessage",
    "ChatWidget",
    "CompletionChunk",
    "CompletionEvent",
    "EventStream",
    "EventStreamAsync",
    "Mistral",
    "MistralError",
    "Reply",
    "RequestError",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamError",
    "SystemMessage",
    "ToolMessage",
    "UserMessage",
    "astream",
    "load_ipython_extension",
    "show",
    "stream",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nb_mistral``: register ``%%mistral`` and make it configurable."""
    from ._magics import MistralMagics

    magics = MistralMagics(shell=ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


_NOTEBOOK_NAMES = {
    "ChatWidget": "_widgets",
    "Reply": "_reply",
    "astream": "_api",
    "show": "_api",
    "stream": "_api",
}


def __getattr__(name: str) -> Any:
    """The notebook layer loads on first use, so the streaming client imports no IPython."""
    module = _NOTEBOOK_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'nb_mistral' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"nb_mistral.{module}"), name)
    globals()[name] = value
    return value
