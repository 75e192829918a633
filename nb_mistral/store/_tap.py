"""Tapping a response: the recorder sees each network chunk as the ``EventStream`` reads it.

``tap`` returns a new ``httpx.Response`` over the same connection whose byte stream notes every
chunk (with its arrival time) on its way to the reader: one list append per network chunk, no
parsing, so recording costs the stream almost nothing. An encoded body (gzip, ...) is decoded
first, so the record always holds the plain SSE text.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx

ChunkLog = list[tuple[float, bytes]]


def _plain(response: httpx.Response) -> bool:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    return encoding in ("", "identity")


class _TapStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The original response's bytes, each chunk also appended to ``log``."""

    def __init__(self, response: httpx.Response, log: ChunkLog, start: float) -> None:
        self._response = response
        self._log = log
        self._start = start

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        # unencoded: the transport's stream itself, one layer less than response.iter_raw()
        source = response.stream if _plain(response) else response.iter_bytes()
        append = self._log.append
        clock = time.monotonic
        start = self._start
        for chunk in source:  # type: ignore[union-attr]
            append((clock() - start, chunk))
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._response
        source = response.stream if _plain(response) else response.aiter_bytes()
        append = self._log.append
        clock = time.monotonic
        start = self._start
        async for chunk in source:  # type: ignore[union-attr]
            append((clock() - start, chunk))
            yield chunk

    def close(self) -> None:
        self._response.close()

    async def aclose(self) -> None:
        await self._response.aclose()


def tap(response: httpx.Response, log: ChunkLog, start: float) -> httpx.Response:
    """A response that reads ``response`` and notes each chunk in ``log`` (sync or async)."""
    headers = httpx.Headers(response.headers)
    if not _plain(response):
        del headers["content-encoding"]
        headers.pop("content-length", None)
    return httpx.Response(
        response.status_code,
        headers=headers,
        stream=_TapStream(response, log, start),
        request=response.request,
        extensions=response.extensions,
    )
