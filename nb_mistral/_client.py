"""The ``Mistral`` client: requests, retries and error mapping over httpx.

Retries happen only before the body begins (the client reads the first chunk inside the retry
loop), so a reply is never duplicated or spliced. The API key lives in a ``_Secret`` that never
prints; it is put on the request by an httpx auth hook, so no local variable holds it.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ._errors import APIError, MistralError, RequestError
from ._eventstream import EventStream, EventStreamAsync
from ._models import ChatCompletionResponse, CompletionEvent, Message

OFFICIAL_SERVER = "https://api.mistral.ai"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)
_MAX_RETRY_AFTER = 60.0

MessageLike = Message | Mapping[str, Any]
R = TypeVar("R")
_M = TypeVar("_M", bound=BaseModel)


class _Secret:
    """Holds the key; its str and repr never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the API key cannot be pickled")


class _BearerAuth(httpx.Auth):
    def __init__(self, secret: _Secret) -> None:
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self._secret.reveal()
        yield request

    def __repr__(self) -> str:
        return "<bearer auth>"


class NoAPIKeyError(MistralError):
    """The official server needs a key and none was given."""

    def __init__(self) -> None:
        super().__init__(
            "No Mistral API key: set MISTRAL_API_KEY (or pass api_key=...), or point "
            "MISTRAL_SERVER_URL at a Mistral-compatible server such as the offline emulator "
            "(python -m nb_mistral.emulator, then MISTRAL_SERVER_URL=http://127.0.0.1:8765)."
        )


def message_dict(message: MessageLike) -> dict[str, Any]:
    """A message as the JSON the API takes; models and plain dicts are both accepted."""
    if isinstance(message, BaseModel):
        return message.model_dump(mode="json", exclude_none=True)
    if isinstance(message, Mapping):
        return dict(message)
    raise TypeError(f"a message must be a message model or a dict, not {type(message).__name__}")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(when - time.time(), 0.0), _MAX_RETRY_AFTER)


class _Retrying:
    """How long to wait before attempt ``n`` (exponential backoff with jitter)."""

    base = 0.5
    cap = 8.0

    def __init__(self, max_retries: int) -> None:
        self.max_retries = max(0, max_retries)

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = _retry_after(response)
            if after is not None:
                return after
        backoff = min(self.cap, self.base * 2**attempt)
        return backoff * random.uniform(0.75, 1.25)


def _api_error(response: httpx.Response, body: bytes) -> APIError:
    request_id = response.headers.get("x-request-id") or response.headers.get(
        "mistral-correlation-id"
    )
    return APIError.from_body(
        response.status_code, body.decode("utf-8", "replace"), request_id=request_id
    )


def _decode(model: type[_M], response: httpx.Response) -> _M:
    """A 2xx body as ``model``; a body that is not one is a ``MistralError``, not pydantic's."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        shown = response.text[:200]
        raise MistralError(
            f"the server's reply did not decode as {model.__name__}: {shown!r} "
            f"({exc.error_count()} validation error(s))"
        ) from exc


def _transport_error(exc: httpx.HTTPError) -> RequestError:
    if isinstance(exc, httpx.TimeoutException):
        return RequestError(f"the request timed out ({type(exc).__name__}: {exc})")
    return RequestError(f"the request failed ({type(exc).__name__}: {exc})")


class Mistral:
    """A small client for Mistral's chat API (and any server that speaks its wire format)."""

    def __init__(
        self,
        api_key: str | None = None,
        server_url: str | None = None,
        timeout_ms: int | None = None,
        max_retries: int = 2,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("MISTRAL_API_KEY")
        self._secret = _Secret(key) if key else None
        url = server_url or os.environ.get("MISTRAL_SERVER_URL") or OFFICIAL_SERVER
        self.server_url = url.rstrip("/")
        self.timeout = (
            httpx.Timeout(timeout_ms / 1000) if timeout_ms is not None else _DEFAULT_TIMEOUT
        )
        self._retrying = _Retrying(max_retries)
        self._client: httpx.Client | None = None
        self._async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.chat = Chat(self)
        self.models = Models(self)

    @property
    def max_retries(self) -> int:
        return self._retrying.max_retries

    @property
    def has_api_key(self) -> bool:
        return self._secret is not None

    def __repr__(self) -> str:
        key = "set" if self._secret else "none"
        return f"Mistral(server_url={self.server_url!r}, api_key=<{key}>)"

    # -- plumbing -------------------------------------------------------------------------

    def _auth(self) -> httpx.Auth | None:
        if self._secret is None:
            if self.server_url.startswith(OFFICIAL_SERVER):
                raise NoAPIKeyError()
            return None
        return _BearerAuth(self._secret)

    def _url(self, path: str) -> str:
        base = self.server_url
        return base + path if not base.endswith("/v1") else base + path.removeprefix("/v1")

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            for old in [old for old in self._async_clients if old.is_closed()]:
                del self._async_clients[old]
            client = self._async_clients[loop] = httpx.AsyncClient(timeout=self.timeout)
        return client

    def _build(
        self,
        client: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        stream: bool,
    ) -> httpx.Request:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        return client.build_request(method, self._url(path), json=body, headers=headers)

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        stream: bool,
        prime: Callable[[httpx.Response], None] | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response (with its first chunk read if ``prime``)."""
        auth = self._auth()
        client = self._sync_client()
        attempt = 0
        while True:
            request = self._build(client, method, path, body, stream)
            response: httpx.Response | None = None
            try:
                response = client.send(request, auth=auth, stream=True)
                if response.status_code < 400:
                    if prime is not None:
                        prime(response)
                    else:
                        response.read()
                    return response
                error_body = response.read()
                response.close()
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise _api_error(response, error_body)
            except httpx.HTTPError as exc:
                if response is not None:
                    response.close()
                if attempt >= self.max_retries:
                    raise _transport_error(exc) from None
                response = None
            except BaseException:
                if response is not None:
                    response.close()
                raise
            time.sleep(self._retrying.delay(attempt, response))
            attempt += 1

    async def _send_async(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        stream: bool,
        prime: Callable[[httpx.Response], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        """Async twin of ``_send``."""
        auth = self._auth()
        client = self._async_client()
        attempt = 0
        while True:
            request = self._build(client, method, path, body, stream)
            response: httpx.Response | None = None
            try:
                response = await client.send(request, auth=auth, stream=True)
                if response.status_code < 400:
                    if prime is not None:
                        await prime(response)
                    else:
                        await response.aread()
                    return response
                error_body = await response.aread()
                await response.aclose()
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise _api_error(response, error_body)
            except httpx.HTTPError as exc:
                if response is not None:
                    await response.aclose()
                if attempt >= self.max_retries:
                    raise _transport_error(exc) from None
                response = None
            except BaseException:
                if response is not None:
                    await response.aclose()
                raise
            await asyncio.sleep(self._retrying.delay(attempt, response))
            attempt += 1

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        clients, self._async_clients = self._async_clients, {}
        for client in clients.values():
            await client.aclose()

    def __enter__(self) -> Mistral:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Mistral:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def chat_body(
    model: str, messages: Iterable[MessageLike], stream: bool, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body of a chat request; options that are None are left out."""
    body: dict[str, Any] = {"model": model, "messages": [message_dict(m) for m in messages]}
    for name, value in options.items():
        if value is not None:
            body[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    body["stream"] = stream
    return body


class Chat:
    """``client.chat``: ``stream``, ``stream_async`` and ``complete``."""

    def __init__(self, client: Mistral) -> None:
        self._client = client

    def stream(
        self, *, model: str, messages: Iterable[MessageLike], **options: Any
    ) -> EventStream[CompletionEvent]:
        """Start a streaming chat; iterate the result (a context manager) for events."""
        body = chat_body(model, messages, True, options)
        holder: list[EventStream[CompletionEvent]] = []

        def prime(response: httpx.Response) -> None:
            stream = EventStream(response, CompletionEvent)
            stream._prime()
            holder.append(stream)

        self._client._send("POST", "/v1/chat/completions", body, stream=True, prime=prime)
        return holder[-1]

    def stream_async(
        self, *, model: str, messages: Iterable[MessageLike], **options: Any
    ) -> _PendingStream:
        """Stream on the running loop (``async with await ...`` or ``async with``)."""
        body = chat_body(model, messages, True, options)
        return _PendingStream(self._client, body)

    def complete(
        self, *, model: str, messages: Iterable[MessageLike], **options: Any
    ) -> ChatCompletionResponse:
        """The whole reply at once (no streaming)."""
        body = chat_body(model, messages, False, options)
        response = self._client._send("POST", "/v1/chat/completions", body, stream=False)
        return _decode(ChatCompletionResponse, response)

    async def complete_async(
        self, *, model: str, messages: Iterable[MessageLike], **options: Any
    ) -> ChatCompletionResponse:
        body = chat_body(model, messages, False, options)
        response = await self._client._send_async(
            "POST", "/v1/chat/completions", body, stream=False
        )
        return _decode(ChatCompletionResponse, response)


class _PendingStream:
    """What ``chat.stream_async`` returns: awaitable (as in the official SDK) and an async
    context manager itself, so both ``async with await ...`` and ``async with ...`` work."""

    def __init__(self, client: Mistral, body: dict[str, Any]) -> None:
        self._client = client
        self._body = body
        self._stream: EventStreamAsync[CompletionEvent] | None = None

    async def _start(self) -> EventStreamAsync[CompletionEvent]:
        holder: list[EventStreamAsync[CompletionEvent]] = []

        async def prime(response: httpx.Response) -> None:
            stream = EventStreamAsync(response, CompletionEvent)
            await stream._prime()
            holder.append(stream)

        await self._client._send_async(
            "POST", "/v1/chat/completions", self._body, stream=True, prime=prime
        )
        self._stream = holder[-1]
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


class ModelCard(BaseModel):
    id: str
    object: str | None = None
    owned_by: str | None = None
    name: str | None = None
    description: str | None = None
    max_context_length: int | None = None


class ModelList(BaseModel):
    object: str | None = None
    data: list[ModelCard] = []


class Models:
    """``client.models``: the server's model list."""

    def __init__(self, client: Mistral) -> None:
        self._client = client

    def list(self) -> ModelList:
        response = self._client._send("GET", "/v1/models", None, stream=False)
        return _decode(ModelList, response)

    async def list_async(self) -> ModelList:
        response = await self._client._send_async("GET", "/v1/models", None, stream=False)
        return _decode(ModelList, response)
