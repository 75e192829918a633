"""Typed events over an httpx response: ``EventStream`` (sync) and ``EventStreamAsync``.

Both share ``_Decoding``, which turns network chunks into validated events; they differ only in
how they read bytes. The hot path validates all events of a network chunk in one pydantic call,
from one JSON text built around their raw bytes, built so that each event's data stays apart
(see ``_KEY``).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import from_json

from ._errors import StreamError
from ._sse import Item, ServerSentEvent, SSEDecoder

T = TypeVar("T")

_adapters: dict[type, TypeAdapter[Any]] = {}
_fast_types: dict[type, type | None] = {}

# The key under which the batch carries each event's data. Unknowable to the server, so no data
# can forge a second one: a value that is not one whole JSON value makes the batch fail.
_KEY = "_" + secrets.token_hex(12)
_OPEN = b'[{"' + _KEY.encode() + b'":'
_BETWEEN = b'\n},{"' + _KEY.encode() + b'":'  # the LF first: no JSON string can run across it
_CLOSE = b"\n}]"


def _list_adapter(event_type: type) -> TypeAdapter[list[Any]]:
    adapter = _adapters.get(event_type)
    if adapter is None:
        adapter = _adapters[event_type] = TypeAdapter(list[event_type])  # type: ignore[valid-type]
    return adapter


def _fast_type(event_type: type) -> type | None:
    """A twin of ``event_type`` that reads ``data`` from ``_KEY`` and forbids other keys, so that
    a whole chunk's events validate from one JSON text in one call. Validated twins are turned
    into ``event_type`` instances (same fields, same layout) by setting ``__class__``. None when
    the type does not lend itself to it; the general path then serves."""
    if event_type in _fast_types:
        return _fast_types[event_type]
    fast: type | None = None
    if isinstance(event_type, type) and issubclass(event_type, BaseModel):
        field = event_type.model_fields.get("data")
        extra = event_type.model_config.get("extra")
        if (
            field is not None
            and not field.alias
            and not field.validation_alias
            and extra != "allow"
        ):
            twin_field = copy.copy(field)
            twin_field.validation_alias = _KEY
            namespace = {
                "__module__": event_type.__module__,
                "__qualname__": event_type.__qualname__,
                "__annotations__": {"data": field.annotation},
                "data": twin_field,
                "model_config": ConfigDict(extra="forbid"),
            }
            try:
                fast = type(event_type)(event_type.__name__, (event_type,), namespace)
            except Exception:  # an exotic model: keep to the general path
                fast = None
    _fast_types[event_type] = fast
    return fast


class _Decoding(Generic[T]):
    """Chunks in, validated events out; remembers whether the stream ended properly."""

    __slots__ = (
        "_adapter",
        "_event_type",
        "_fast",
        "_fast_adapter",
        "_final_hint",
        "_sentinel_bytes",
        "_sse",
        "done",
        "error",
        "finished",
        "sentinel",
    )

    def __init__(self, event_type: type[T], sentinel: str | None) -> None:
        self._event_type = event_type
        self._adapter = _list_adapter(event_type)
        self._fast = _fast_type(event_type)
        self._fast_adapter = _list_adapter(self._fast) if self._fast is not None else None
        # An event type may say, from the raw data of a batch, that none of it can be final.
        self._final_hint = getattr(event_type, "may_be_final", None)
        self._sse = SSEDecoder()
        self.sentinel = sentinel
        self._sentinel_bytes = sentinel.encode() if sentinel is not None else None
        self.done = False  # the sentinel arrived
        self.finished = False  # an event said it was the last (e.g. a finish_reason)
        self.error: StreamError | None = None

    def feed(self, chunk: bytes) -> list[T]:
        sse = self._sse
        full_events = sse.full_events
        items = sse.feed_items(chunk)
        return self._validate(items, sse.full_events != full_events) if items else []

    def end(self) -> None:
        """The body is over: a stream that wants a sentinel and got no ending is truncated."""
        self._sse.end()
        if self.sentinel is not None and not self.done and not self.finished:
            self.error = StreamError(
                f"the stream ended before {self.sentinel} or a finish reason: "
                "the reply is incomplete"
            )

    def fail(self, exc: httpx.HTTPError) -> StreamError:
        """A transport failure after the stream began."""
        self._sse.end()
        if isinstance(exc, httpx.TimeoutException):
            return StreamError(f"the stream stalled: no data within the timeout ({exc})")
        return StreamError(f"the connection broke mid-stream: {exc or type(exc).__name__}")

    def _validate(self, items: list[Item], full: bool) -> list[T]:
        """``full``: some items are whole ``ServerSentEvent``s, not bare data."""
        if self._sentinel_bytes is not None and (full or self._sentinel_bytes in items):
            self._cut_at_sentinel(items)
            if not items:
                return []
        if not full and self._fast is not None:
            raw = b"".join((_OPEN, _BETWEEN.join(items), _CLOSE))  # type: ignore[arg-type]
            try:
                events = self._fast_adapter.validate_json(raw)  # type: ignore[union-attr]
            except ValidationError:
                pass
            else:
                if len(events) == len(items):  # always so (see _KEY); cheap to be sure
                    set_attribute = object.__setattr__  # not the model's: slow, and it refuses
                    event_type = self._event_type
                    for event in events:
                        set_attribute(event, "__class__", event_type)
                    if not self.finished and (self._final_hint is None or self._final_hint(raw)):
                        self._check_final(events)
                    return events
        events = self._validate_general(items)
        if not self.finished:
            self._check_final(events)
        return events

    def _cut_at_sentinel(self, items: list[Item]) -> None:
        sentinel = self.sentinel
        for index, item in enumerate(items):
            data = item.data if type(item) is ServerSentEvent else item  # type: ignore[union-attr]
            if data == sentinel or data == self._sentinel_bytes:
                del items[index:]
                self.done = True
                return

    def _check_final(self, events: list[T]) -> None:
        for event in events:
            if getattr(event, "is_final", False):
                self.finished = True
                return

    def _validate_general(self, items: list[Item]) -> list[T]:
        """Every event on its own terms: data JSON-decoded when it parses, else the string."""
        mappings: list[dict[str, Any]] = []
        for item in items:
            sse = (
                item
                if type(item) is ServerSentEvent
                else ServerSentEvent(item.decode("utf-8", "replace"))  # type: ignore[union-attr]
            )
            data = sse.data
            try:
                value: Any = from_json(data)
            except ValueError:
                value = data
            mapping = {"data": value}
            if sse.event:
                mapping["event"] = sse.event
            if sse.id:
                mapping["id"] = sse.id
            if sse.retry is not None:
                mapping["retry"] = sse.retry
            mappings.append(mapping)
        try:
            return self._adapter.validate_python(mappings)
        except ValidationError:
            return self._validate_each(mappings)

    def _validate_each(self, mappings: list[dict[str, Any]]) -> list[T]:
        """Slow path after a failed batch: keep the good events before the bad one."""
        validate = TypeAdapter(self._event_type).validate_python
        events = []
        for mapping in mappings:
            try:
                events.append(validate(mapping))
            except ValidationError as exc:
                data = mapping["data"]
                shown = data if isinstance(data, str) else repr(data)
                if len(shown) > 200:
                    shown = shown[:200] + "…"
                self.error = StreamError(
                    f"an event did not decode as {self._event_type.__name__}: {shown!r} "
                    f"({exc.error_count()} validation error(s), first: {exc.errors()[0]['msg']})"
                )
                self.error.__cause__ = exc
                break
        return events


class _StreamBase(Generic[T]):
    response: httpx.Response

    def __init__(
        self, response: httpx.Response, event_type: type[T], *, sentinel: str | None = "[DONE]"
    ) -> None:
        self.response = response
        self.event_type = event_type
        self._decoding = _Decoding(event_type, sentinel)
        self._first: bytes | None = None  # a chunk read ahead by the client (see _prime)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.event_type.__name__} "
            f"{self.response.request.method} {self.response.request.url}>"
        )


class EventStream(_StreamBase[T]):
    """Iterate the events of a streaming response; leaving the ``with`` block closes it."""

    def __init__(
        self, response: httpx.Response, event_type: type[T], *, sentinel: str | None = "[DONE]"
    ) -> None:
        super().__init__(response, event_type, sentinel=sentinel)
        self._chunks: Iterator[bytes] | None = None
        self._events = self._iterate()

    def _prime(self) -> None:
        """Read the first chunk now, so that a failure before the body begins can be retried."""
        self._chunks = self.response.iter_bytes()
        self._first = next(self._chunks, b"")

    def _iterate(self) -> Iterator[T]:
        decoding = self._decoding
        chunks = self._chunks if self._chunks is not None else self.response.iter_bytes()
        try:
            if self._first:
                yield from decoding.feed(self._first)
            while not decoding.done and decoding.error is None:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    decoding.end()
                    break
                except httpx.HTTPError as exc:
                    raise decoding.fail(exc) from exc
                yield from decoding.feed(chunk)
            if decoding.error is not None:
                raise decoding.error
        finally:
            self.response.close()

    def __iter__(self) -> Iterator[T]:
        return self._events

    def __next__(self) -> T:
        return next(self._events)

    def __enter__(self) -> EventStream[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the response (and so the connection): the server sees the client go."""
        self._events.close()
        self.response.close()


class EventStreamAsync(_StreamBase[T]):
    """Async twin of ``EventStream``, for ``async for`` on a running event loop."""

    def __init__(
        self, response: httpx.Response, event_type: type[T], *, sentinel: str | None = "[DONE]"
    ) -> None:
        super().__init__(response, event_type, sentinel=sentinel)
        self._chunks: AsyncIterator[bytes] | None = None
        self._events = self._iterate()

    async def _prime(self) -> None:
        """Read the first chunk now, so that a failure before the body begins can be retried."""
        self._chunks = self.response.aiter_bytes()
        self._first = await anext(self._chunks, b"")

    async def _iterate(self) -> AsyncIterator[T]:
        decoding = self._decoding
        chunks = self._chunks if self._chunks is not None else self.response.aiter_bytes()
        try:
            if self._first:
                for event in decoding.feed(self._first):
                    yield event
            while not decoding.done and decoding.error is None:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    decoding.end()
                    break
                except httpx.HTTPError as exc:
                    raise decoding.fail(exc) from exc
                for event in decoding.feed(chunk):
                    yield event
            if decoding.error is not None:
                raise decoding.error
        finally:
            await self.response.aclose()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._events

    async def __anext__(self) -> T:
        return await anext(self._events)

    async def __aenter__(self) -> EventStreamAsync[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the response (and so the connection): the server sees the client go."""
        await self._events.aclose()
        await self.response.aclose()

    close = aclose
