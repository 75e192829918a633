"""Replay: a recorded reply as an ``httpx.Response`` whose body is the recorded SSE, so it goes
through the same ``EventStream`` / ``EventStreamAsync`` path as a live one.

Instantly by default (the bytes in large pieces); with ``speed`` the recorded pacing, scaled
(``speed=1.0`` as it came, ``2.0`` twice as fast).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

import httpx

from ._record import Chunks, Record

REPLAY_HEADER = "x-nb-mistral-replay"
_PIECE = 64 * 1024
_SENTINEL = b"data: [DONE]\n\n"


def _pieces(chunks: Chunks) -> list[bytes]:
    whole = b"".join([data for _, data in chunks]) + _SENTINEL
    return [whole[start : start + _PIECE] for start in range(0, len(whole), _PIECE)]


def _paced(chunks: Chunks) -> list[tuple[float, bytes]]:
    end = chunks[-1][0] if chunks else 0.0
    return [*chunks, (end, _SENTINEL)]


class _ReplayStream(httpx.SyncByteStream):
    def __init__(self, chunks: Chunks, speed: float | None) -> None:
        self._chunks = chunks
        self._speed = speed

    def __iter__(self) -> Iterator[bytes]:
        if not self._speed:
            yield from _pieces(self._chunks)
            return
        began = time.monotonic()
        for offset, data in _paced(self._chunks):
            wait = offset / self._speed - (time.monotonic() - began)
            if wait > 0:
                time.sleep(wait)
            yield data


class _AsyncReplayStream(httpx.AsyncByteStream):
    def __init__(self, chunks: Chunks, speed: float | None) -> None:
        self._chunks = chunks
        self._speed = speed
        self._reading: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._reading = self._aiterate()
        return self._reading

    async def _aiterate(self) -> AsyncGenerator[bytes, None]:
        if not self._speed:
            for piece in _pieces(self._chunks):
                yield piece
            return
        began = time.monotonic()
        for offset, data in _paced(self._chunks):
            wait = offset / self._speed - (time.monotonic() - began)
            if wait > 0:
                await asyncio.sleep(wait)
            yield data

    async def aclose(self) -> None:
        """A reader that stops at ``[DONE]`` leaves the generator suspended: close it here."""
        if self._reading is not None:
            await self._reading.aclose()


def _response(
    record: Record, stream: httpx.SyncByteStream | httpx.AsyncByteStream
) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream", REPLAY_HEADER: record.id},
        stream=stream,
        request=httpx.Request("POST", record.server_url + record.endpoint),
    )


def replay_response(record: Record, *, speed: float | None = None) -> httpx.Response:
    """For ``EventStream(replay_response(record), CompletionEvent)``."""
    return _response(record, _ReplayStream(record.chunks, speed))


def replay_response_async(record: Record, *, speed: float | None = None) -> httpx.Response:
    """For ``EventStreamAsync(replay_response_async(record), CompletionEvent)``."""
    return _response(record, _AsyncReplayStream(record.chunks, speed))
