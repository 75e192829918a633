"""``client.chat`` and ``client.models``: the API's operations, each one request through the
client's single request path (``Mistral._send`` / ``_send_async``)."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from typing_extensions import Unpack

from ._errors import MistralError
from ._eventstream import EventStream, EventStreamAsync
from ._models import ChatCompletionResponse, CompletionEvent, ModelList
from ._redact import clean_cause
from ._request import ChatOptions, MessageLike, chat_body
from ._structured import ParsedChatCompletionResponse, parsed_completion

if TYPE_CHECKING:
    from ._client import Mistral

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"

_M = TypeVar("_M", bound=BaseModel)


def decode(model: type[_M], response: httpx.Response) -> _M:
    """A 2xx body as ``model``; a body that is not one is a ``MistralError``, not pydantic's."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        failure = MistralError(
            f"the server's reply did not decode as {model.__name__}: {response.text[:200]!r} "
            f"({exc.error_count()} validation error(s))"
        )
        cause = clean_cause(exc)
    failure.__cause__ = cause
    raise failure


def _open_stream(response: httpx.Response) -> EventStream[CompletionEvent]:
    stream = EventStream(response, CompletionEvent)
    stream._prime()
    return stream


async def _open_stream_async(response: httpx.Response) -> EventStreamAsync[CompletionEvent]:
    stream = EventStreamAsync(response, CompletionEvent)
    await stream._prime()
    return stream


def _completion(response: httpx.Response) -> ChatCompletionResponse:
    response.read()
    return decode(ChatCompletionResponse, response)


async def _completion_async(response: httpx.Response) -> ChatCompletionResponse:
    await response.aread()
    return decode(ChatCompletionResponse, response)


def _model_list(response: httpx.Response) -> ModelList:
    response.read()
    return decode(ModelList, response)


async def _model_list_async(response: httpx.Response) -> ModelList:
    await response.aread()
    return decode(ModelList, response)


class Chat:
    """``client.chat``: ``stream``, ``stream_async``, ``complete`` and ``complete_async``."""

    def __init__(self, client: Mistral) -> None:
        self._client = client

    def stream(
        self, *, model: str, messages: Iterable[MessageLike], **options: Unpack[ChatOptions]
    ) -> EventStream[CompletionEvent]:
        """Start a streaming chat; iterate the result (a context manager) for events."""
        body = chat_body(model, messages, True, options)
        return self._client._send("POST", CHAT_PATH, body, _open_stream)

    def stream_async(
        self, *, model: str, messages: Iterable[MessageLike], **options: Unpack[ChatOptions]
    ) -> PendingStream:
        """Stream on the running loop (``async with await ...`` or ``async with``)."""
        return PendingStream(self._client, chat_body(model, messages, True, options))

    def complete(
        self, *, model: str, messages: Iterable[MessageLike], **options: Unpack[ChatOptions]
    ) -> ChatCompletionResponse:
        """The whole reply at once (no streaming)."""
        body = chat_body(model, messages, False, options)
        return self._client._send("POST", CHAT_PATH, body, _completion)

    async def complete_async(
        self, *, model: str, messages: Iterable[MessageLike], **options: Unpack[ChatOptions]
    ) -> ChatCompletionResponse:
        body = chat_body(model, messages, False, options)
        return await self._client._send_async("POST", CHAT_PATH, body, _completion_async)

    def parse(
        self,
        response_format: type[_M],
        *,
        model: str,
        messages: Iterable[MessageLike],
        **options: Any,
    ) -> ParsedChatCompletionResponse[_M]:
        """``complete`` with ``response_format`` a model class; each choice's
        ``message.parsed`` is the validated object (as in the official SDK)."""
        options["response_format"] = response_format
        return parsed_completion(
            self.complete(model=model, messages=messages, **options), response_format
        )

    async def parse_async(
        self,
        response_format: type[_M],
        *,
        model: str,
        messages: Iterable[MessageLike],
        **options: Any,
    ) -> ParsedChatCompletionResponse[_M]:
        options["response_format"] = response_format
        response = await self.complete_async(model=model, messages=messages, **options)
        return parsed_completion(response, response_format)


class PendingStream:
    """What ``chat.stream_async`` returns: awaitable (as in the official SDK) and an async
    context manager itself, so both ``async with await ...`` and ``async with ...`` work."""

    def __init__(self, client: Mistral, body: dict[str, Any]) -> None:
        self._client = client
        self._body = body
        self._stream: EventStreamAsync[CompletionEvent] | None = None

    async def _start(self) -> EventStreamAsync[CompletionEvent]:
        self._stream = await self._client._send_async(
            "POST", CHAT_PATH, self._body, _open_stream_async
        )
        return self._stream

    def __await__(self) -> Generator[Any, None, EventStreamAsync[CompletionEvent]]:
        return self._start().__await__()

    async def __aenter__(self) -> EventStreamAsync[CompletionEvent]:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    def __repr__(self) -> str:
        return f"<PendingStream {self._body.get('model')!r} at {self._client.server_url}>"


class Models:
    """``client.models``: the server's model list."""

    def __init__(self, client: Mistral) -> None:
        self._client = client

    def list(self) -> ModelList:
        return self._client._send("GET", MODELS_PATH, None, _model_list)

    async def list_async(self) -> ModelList:
        return await self._client._send_async("GET", MODELS_PATH, None, _model_list_async)
