"""Tapping a response: the recorder sees each network chunk as the ``EventStream`` reads it.

``tap`` returns a new ``httpx.Response`` over the same connection whose byte stream notes every
chunk (with its arrival time) on its way to the reader: one list append per network chunk, no
parsing, so recording costs the stream almost nothing. Every ``interval`` seconds of stream it
calls ``due`` (the recorder wakes the writer thread), so the stream itself paces the writes and
the writer sleeps while nothing arrives. An encoded body (gzip, ...) is decoded first, so the
record always holds the plain SSE text.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator

import httpx


class ChunkLog:
    """Chunks and their arrival offsets, in two flat sequences: appending creates no object the
    garbage collector tracks (a tuple per chunk would), which a 3,000-event stream notices.
    ``offsets`` is appended first, so it is never shorter than ``chunks``."""

    __slots__ = ("chunks", "offsets")

    def __init__(self) -> None:
        self.offsets = array("d")
        self.chunks: list[bytes] = []

    def add(self, offset: float, chunk: bytes) -> None:
        self.offsets.append(offset)
        self.chunks.append(chunk)

    def take(self) -> tuple[array[float], list[bytes]]:
        """Remove and return what is there (the writer's side; the streaming side appends)."""
        count = len(self.chunks)
        offsets, chunks = self.offsets[:count], self.chunks[:count]
        del self.chunks[:count]
        del self.offsets[:count]
        return offsets, chunks


# Chunks that come less than BURST_GAP apart were already buffered: the next BURST_SKIP of them
# take the last clock reading instead of reading the clock each, which is most of what tapping a
# fast stream costs (measured: 0.37 -> 0.22 ms for 750 chunks). Chunks the network paces are all
# stamped; the price is that a chunk among the few after a burst may be stamped early by the
# network's pause before it, so a paced replay shows it that much sooner.
BURST_GAP = 0.0005
BURST_SKIP = 7


def _plain(response: httpx.Response) -> bool:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    return encoding in ("", "identity")


class _TapStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The original response's bytes, each chunk also appended to ``log``."""

    def __init__(
        self,
        response: httpx.Response,
        log: ChunkLog,
        start: float,
        due: Callable[[], None],
        interval: float,
        closed: Callable[[], None],
    ) -> None:
        self._response = response
        self._log = log
        self._start = start
        self._due = due
        self._interval = interval
        self._closed = closed
        self._reading: AsyncGenerator[bytes, None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        # unencoded: the transport's stream itself, one layer less than response.iter_raw()
        source = response.stream if _plain(response) else response.iter_bytes()
        note_offset, note_chunk = self._log.offsets.append, self._log.chunks.append
        clock, start = time.monotonic, self._start
        interval = self._interval
        next_due = interval
        offset = -1.0
        unstamped = 0  # chunks of a burst left to stamp with the last clock reading
        for chunk in source:  # type: ignore[union-attr]
            if unstamped:
                unstamped -= 1
                note_offset(offset)
            else:
                now = clock() - start
                if now - offset < BURST_GAP:
                    unstamped = BURST_SKIP
                offset = now
                note_offset(now)
                if now >= next_due:
                    next_due = now + interval
                    self._due()
            note_chunk(chunk)
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._reading = self._aiterate()
        return self._reading

    async def _aiterate(self) -> AsyncGenerator[bytes, None]:
        response = self._response
        source = response.stream if _plain(response) else response.aiter_bytes()
        note_offset, note_chunk = self._log.offsets.append, self._log.chunks.append
        clock, start = time.monotonic, self._start
        interval = self._interval
        next_due = interval
        offset = -1.0
        unstamped = 0  # chunks of a burst left to stamp with the last clock reading
        async for chunk in source:  # type: ignore[union-attr]
            if unstamped:
                unstamped -= 1
                note_offset(offset)
            else:
                now = clock() - start
                if now - offset < BURST_GAP:
                    unstamped = BURST_SKIP
                offset = now
                note_offset(now)
                if now >= next_due:
                    next_due = now + interval
                    self._due()
            note_chunk(chunk)
            yield chunk

    def close(self) -> None:
        self._closed()
        self._response.close()

    async def aclose(self) -> None:
        """Close the reading generator here (a reader that stops at ``[DONE]`` leaves it
        suspended), so no finalizer has to run it later on the loop."""
        self._closed()
        if self._reading is not None:
            await self._reading.aclose()
        await self._response.aclose()


def tap(
    response: httpx.Response,
    log: ChunkLog,
    start: float,
    due: Callable[[], None],
    interval: float,
    closed: Callable[[], None],
) -> httpx.Response:
    """A response that reads ``response`` and notes each chunk in ``log`` (sync or async);
    ``closed`` is called when the reader closes it."""
    headers = httpx.Headers(response.headers)
    if not _plain(response):
        del headers["content-encoding"]
        headers.pop("content-length", None)
    return httpx.Response(
        response.status_code,
        headers=headers,
        stream=_TapStream(response, log, start, due, interval, closed),
        request=response.request,
        extensions=response.extensions,
    )
