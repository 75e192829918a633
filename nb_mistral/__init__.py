"""nb_mistral: Mistral's streaming chat API in Jupyter, over a strict, fast SSE client.

The streaming client loads with the package; the notebook layer (``Reply``, ``stream``,
``astream``, ``show``, ``ChatWidget``) and the reply store (``Record``, ``history``) load on
first use. ``from nb_mistral import *`` brings
everything but ``ChatWidget`` (which needs ipywidgets) and imports neither IPython nor ipywidgets.
"""

from typing import TYPE_CHECKING, Any

from ._client import Mistral
from ._errors import (
    APIError,
    CacheMiss,
    ConfigurationError,
    MistralError,
    NoAPIKeyError,
    RequestError,
    StreamError,
)
from ._eventstream import EventStream, EventStreamAsync
from ._models import (
    AssistantMessage,
    ChatCompletionChoice,
    ChatCompletionResponse,
    CompletionChunk,
    CompletionEvent,
    CompletionResponseStreamChoice,
    DeltaMessage,
    FunctionCall,
    ModelCard,
    ModelList,
    OtherChunk,
    SystemMessage,
    TextChunk,
    ThinkChunk,
    ToolCall,
    ToolMessage,
    UsageInfo,
    UserMessage,
)
from ._request import ChatOptions
from ._resources import Chat, Models, PendingStream
from ._retry import RetryPolicy
from ._sse import ServerSentEvent, SSEDecoder
from ._structured import (
    ParsedAssistantMessage,
    ParsedChatCompletionChoice,
    ParsedChatCompletionResponse,
)

if TYPE_CHECKING:
    from ._api import astream, show, stream
    from ._batch import (
        Batch,
        BatchError,
        BatchInterrupted,
        BatchJob,
        MemoryCache,
        ReplyCache,
        amap,
        batch_job,
    )
    from ._batch import map as map
    from ._reply import Reply
    from ._widgets import ChatWidget as ChatWidget
    from .store import Record, history

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AssistantMessage",
    "Batch",
    "BatchError",
    "BatchInterrupted",
    "BatchJob",
    "CacheMiss",
    "Chat",
    "ChatCompletionChoice",
    "ChatCompletionResponse",
    "ChatOptions",
    "CompletionChunk",
    "CompletionEvent",
    "CompletionResponseStreamChoice",
    "ConfigurationError",
    "DeltaMessage",
    "EventStream",
    "EventStreamAsync",
    "FunctionCall",
    "MemoryCache",
    "Mistral",
    "MistralError",
    "ModelCard",
    "ModelList",
    "Models",
    "NoAPIKeyError",
    "OtherChunk",
    "ParsedAssistantMessage",
    "ParsedChatCompletionChoice",
    "ParsedChatCompletionResponse",
    "PendingStream",
    "Record",
    "Reply",
    "ReplyCache",
    "RequestError",
    "RetryPolicy",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamError",
    "SystemMessage",
    "TextChunk",
    "ThinkChunk",
    "ToolCall",
    "ToolMessage",
    "UsageInfo",
    "UserMessage",
    "amap",
    "astream",
    "batch_job",
    "history",
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


# Loaded on first use: module of each name. ChatWidget is left out of __all__ (ipywidgets), and
# map too (a star import must not shadow the builtin).
_LAZY = {
    "Batch": "_batch",
    "BatchError": "_batch",
    "BatchInterrupted": "_batch",
    "BatchJob": "_batch",
    "MemoryCache": "_batch",
    "ReplyCache": "_batch",
    "amap": "_batch",
    "batch_job": "_batch",
    "map": "_batch",
    "ChatWidget": "_widgets",
    "Record": "store",
    "Reply": "_reply",
    "astream": "_api",
    "history": "store",
    "show": "_api",
    "stream": "_api",
}


def _public(value: Any) -> Any:
    """Reprs and tracebacks say ``nb_mistral.APIError``, not ``nb_mistral._errors.APIError``."""
    if getattr(value, "__module__", "").startswith("nb_mistral."):
        value.__module__ = "nb_mistral"
    return value


def __getattr__(name: str) -> Any:
    """The notebook layer loads on first use, so the streaming client imports no IPython."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nb_mistral' has no attribute {name!r}")
    import importlib

    value = _public(getattr(importlib.import_module(f"nb_mistral.{module}"), name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, the lazily loaded ones included."""
    return sorted({*__all__, *_LAZY, "__version__"})


for _name in __all__:
    if _name not in _LAZY:
        _public(globals()[_name])
del _name
