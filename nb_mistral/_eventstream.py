"""Typed events over an httpx response: ``EventStream`` (sync) and ``EventStreamAsync``.

Both share ``_Decoding``, which turns network chunks into validated events; they differ only in
how they read bytes. The hot path validates all events of a network chunk in one pydantic call,
from one JSON text built around their raw bytes, built so that each event's data stays apart
(see ``_fastpath``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

from ._errors import StreamError
from ._fastpath import BETWEEN, CLOSE, OPEN, batch_validator, finish_context
from ._redact import clean_cause
from ._sse import Item, ServerSentEvent, SSEDecoder

T = TypeVar("T")

_adapters: dict[type, TypeAdapter[Any]] = {}
# After the sentinel, the rest of the body (normally just the end of the chunked encoding) is
# read, so that the connection goes back to the pool; a longer tail is not worth waiting for.
_TAIL_LIMIT = 64 * 1024


def _json_with_lone_surrogates(data: str) -> Any:
    """The JSON value of ``data`` when its only fault is a lone surrogate escape (``"\\ud800"``,
    valid JSON that pydantic-core refuses), else the string itself: such a character must not
    stop a stream (the reply keeps it; what is displayed shows U+FFFD)."""
    if "\\u" not in data:
        return data
    try:
        return json.loads(data)
    except ValueError:
        return data


def _list_adapter(event_type: type) -> TypeAdapter[list[Any]]:
    adapter = _adapters.get(event_type)
    if adapter is None:
        adapter = _adapters[event_type] = TypeAdapter(list[event_type])  # type: ignore[valid-type]
    return adapter


def _read_tail(chunks: Iterator[bytes]) -> None:
    """After the sentinel: read the rest of a short body, so the connection can be reused."""
    read = 0
    with contextlib.suppress(httpx.HTTPError):
        for chunk in chunks:
            read += len(chunk)
            if read > _TAIL_LIMIT:
                return


async def _read_tail_async(chunks: AsyncIterator[bytes]) -> None:
    read = 0
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in chunks:
            read += len(chunk)
            if read > _TAIL_LIMIT:
                return


def _unencoded(response: httpx.Response) -> bool:
    """The body needs no content decoding, so its raw bytes can be read with one layer less."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    return encoding in ("", "identity") and not response.is_stream_consumed


class _Decoding(Generic[T]):
    """Chunks in, validated events out; remembers whether the stream ended properly."""

    __slots__ = (
        "_adapter",
        "_batch_validator",
        "_event_type",
        "_final_seen",
        "_finish",
        "_sentinel_bytes",
        "_sse",
        "done",
        "error",
        "sentinel",
    )

    def __init__(self, event_type: type[T], sentinel: str | None) -> None:
        self._event_type = event_type
        self._adapter = _list_adapter(event_type)
        self._batch_validator = batch_validator(event_type)
        # An event type may report finish reasons as they are validated (see _fastpath);
        # otherwise each event's ``is_final`` is asked, if it has one.
        self._finish = finish_context(event_type)
        self._sse = SSEDecoder()
        self.sentinel = sentinel
        self._sentinel_bytes = sentinel.encode() if sentinel is not None else None
        self.done = False  # the sentinel arrived
        self._final_seen = False
        self.error: StreamError | None = None

    def feed(self, chunk: bytes) -> list[T]:
        sse = self._sse
        full_events = sse.full_events
        items = sse.feed_items(chunk)
        if not items:
            return []
        full = sse.full_events != full_events  # some items are whole events, not bare data
        if self._sentinel_bytes is not None and (full or self._sentinel_bytes in items):
            self._cut_at_sentinel(items)
            if not items:
                return []
        events = None
        if not full and self._batch_validator is not None:
            parts = items.copy()  # wrapped piecewise: cheaper than copying one large text
            parts[0] = OPEN + parts[0]  # type: ignore[operator]
            parts[-1] += CLOSE  # type: ignore[operator]
            events = self._validate_batch(BETWEEN.join(parts), len(items))  # type: ignore[arg-type]
        if events is None:
            events = self._validate_general(items)
        if self._finish is None:
            self._note_finals(events)
        return events

    @property
    def finished(self) -> bool:
        """Whether an event said it was the last (e.g. by a finish reason)."""
        return self._finish.seen if self._finish is not None else self._final_seen

    def _note_finals(self, events: list[T]) -> None:
        if not self._final_seen:
            self._final_seen = any(getattr(event, "is_final", False) for event in events)

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
            error = StreamError(f"the stream stalled: no data within the timeout ({exc})")
        else:
            error = StreamError(f"the connection broke mid-stream: {exc or type(exc).__name__}")
        error.__cause__ = clean_cause(exc)
        return error

    def _validate_batch(self, raw: bytes, count: int) -> list[T] | None:
        """``count`` events in one call (see ``_fastpath``); None if any of them fails."""
        try:
            events = self._batch_validator.validate_json(  # type: ignore[union-attr]
                raw, context=self._finish
            )
        except ValidationError:
            return None
        return events if len(events) == count else None  # always so (see _fastpath); cheap

    def _cut_at_sentinel(self, items: list[Item]) -> None:
        sentinel = self.sentinel
        for index, item in enumerate(items):
            data = item.data if type(item) is ServerSentEvent else item
            if data == sentinel or data == self._sentinel_bytes:
                del items[index:]
                self.done = True
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
                value = _json_with_lone_surrogates(data)
            mapping = {"data": value}
            if sse.event:
                mapping["event"] = sse.event
            if sse.id:
                mapping["id"] = sse.id
            if sse.retry is not None:
                mapping["retry"] = sse.retry
            mappings.append(mapping)
        try:
            return self._adapter.validate_python(mappings, context=self._finish)
        except ValidationError:
            return self._validate_each(mappings)

    def _validate_each(self, mappings: list[dict[str, Any]]) -> list[T]:
        """Slow path after a failed batch: keep the good events before the bad one."""
        validate = TypeAdapter(self._event_type).validate_python
        events = []
        for mapping in mappings:
            try:
                events.append(validate(mapping, context=self._finish))
            except ValidationError as exc:
                data = mapping["data"]
                shown = data if isinstance(data, str) else repr(data)
                if len(shown) > 200:
                    shown = shown[:200] + "…"
                self.error = StreamError(
                    f"an event did not decode as {self._event_type.__name__}: {shown!r} "
                    f"({exc.error_count()} validation error(s), first: {exc.errors()[0]['msg']})"
                )
                self.error.__cause__ = clean_cause(exc)
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

    def _byte_chunks(self) -> Iterator[bytes]:
        response = self.response
        return response.iter_raw() if _unencoded(response) else response.iter_bytes()

    def _prime(self) -> None:
        """Read the first chunk now, so that a failure before the body begins can be retried."""
        self._chunks = self._byte_chunks()
        self._first = next(self._chunks, b"")

    def _iterate(self) -> Generator[T, None, None]:
        decoding = self._decoding
        chunks = self._chunks if self._chunks is not None else self._byte_chunks()
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
                    decoding.error = decoding.fail(exc)
                    break
                yield from decoding.feed(chunk)
            if decoding.error is not None:
                raise decoding.error  # outside the except block: no httpx error as context
            if decoding.done:
                _read_tail(chunks)
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

    def _byte_chunks(self) -> AsyncIterator[bytes]:
        response = self.response
        return response.aiter_raw() if _unencoded(response) else response.aiter_bytes()

    async def _prime(self) -> None:
        """Read the first chunk now, so that a failure before the body begins can be retried."""
        self._chunks = self._byte_chunks()
        self._first = await anext(self._chunks, b"")

    async def _iterate(self) -> AsyncGenerator[T, None]:
        decoding = self._decoding
        chunks = self._chunks if self._chunks is not None else self._byte_chunks()
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
                    decoding.error = decoding.fail(exc)
                    break
                for event in decoding.feed(chunk):
                    yield event
            if decoding.error is not None:
                raise decoding.error  # outside the except block: no httpx error as context
            if decoding.done:
                await _read_tail_async(chunks)
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
