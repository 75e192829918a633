"""A small HTTP/1.1 server on asyncio streams, built for streaming responses.

It does what a streaming chat API needs and no more: keep-alive, request bodies by
Content-Length (or chunked), JSON responses with Content-Length, and chunked streaming
responses where every chunk is written and drained at once. A reader task per connection
watches for EOF all the time, so a client that goes away mid-stream is noticed while the
handler is still waiting for its next token, not only at the next failed write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Literal

log = logging.getLogger("nb_mistral.emulator")

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_HIGH_WATER = 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it, kept for tests to inspect."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes = field(repr=False)
    query: str = ""


def base_url(host: str, port: int) -> str:
    """``http://host:port``, with IPv6 hosts in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


Handler = Callable[[RecordedRequest, "Responder"], Awaitable[None]]


class _Closed(Exception):
    """The client closed the connection (or sent an incomplete message before closing)."""


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Inbox:
    """Buffered reading from a connection, fed by one task that is always reading.

    Always reading is what turns a client's close into an event (``eof_event``) that a
    paced stream can wait on next to its timer.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buf = bytearray()
        self._changed = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._waiting = False
        self.eof = False
        self.eof_event = asyncio.Event()

    async def pump(self) -> None:
        try:
            while True:
                if len(self._buf) >= _HIGH_WATER and not self._waiting:
                    self._room.clear()
                    await self._room.wait()
                    continue
                data = await self._reader.read(65536)
                if not data:
                    break
                self._buf += data
                self._changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.eof = True
            self.eof_event.set()
            self._changed.set()

    async def _more(self) -> None:
        if self.eof:
            raise _Closed
        self._waiting = True
        self._room.set()
        self._changed.clear()
        try:
            await self._changed.wait()
        finally:
            self._waiting = False

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        if len(self._buf) < _HIGH_WATER:
            self._room.set()
        return data

    async def readuntil(self, sep: bytes, limit: int) -> bytes | None:
        """Bytes up to and including ``sep``; None on a clean EOF between messages."""
        start = 0
        while True:
            i = self._buf.find(sep, start)
            if 0 <= i <= limit:
                return self._take(i + len(sep))
            if len(self._buf) > limit:
                raise _BadRequest(431)
            if self.eof:
                if self._buf.strip():
                    raise _Closed
                return None
            start = max(0, len(self._buf) - len(sep) + 1)
            await self._more()

    async def readline(self) -> bytes:
        line = await self.readuntil(b"\r\n", _MAX_HEAD)
        if line is None:
            raise _Closed
        return line

    async def readexactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self._more()
        return self._take(n)


class Responder:
    """Writes one response: a whole JSON body, or a stream of chunks."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        inbox: _Inbox,
        request_id: str,
        keep_alive: bool,
        chunked: bool,
    ) -> None:
        self._writer = writer
        self._inbox = inbox
        self._chunked = chunked
        self._gone = False
        self._eof_waiter: asyncio.Future[Any] | None = None
        self.request_id = request_id
        self.keep_alive = keep_alive
        self.started = False
        self.streaming = False
        self.finished = False

    @property
    def client_gone(self) -> bool:
        """True once the client closed, reset, or stopped being writable."""
        return self._gone or self._inbox.eof or self._writer.transport.is_closing()

    async def send_json(
        self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()
    ) -> bool:
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return await self.send(status, body, "application/json", headers)

    async def send(
        self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> bool:
        """A complete response with Content-Length."""
        head = self._head(
            status,
            [("content-type", content_type), ("content-length", str(len(body))), *headers],
        )
        self.started = True
        self.finished = await self._write(head + body, half_closed_ok=True)
        return self.finished

    async def start_stream(
        self, status: int, content_type: str, headers: Iterable[tuple[str, str]] = ()
    ) -> bool:
        """Send the head of a streaming response; chunks follow with ``send_chunk``."""
        all_headers = [("content-type", content_type), ("cache-control", "no-cache"), *headers]
        if self._chunked:
            all_headers.append(("transfer-encoding", "chunked"))
        else:
            self.keep_alive = False  # HTTP/1.0: the end of the body is the end of the connection
        self.started = self.streaming = True
        self._eof_waiter = asyncio.ensure_future(self._inbox.eof_event.wait())
        return await self._write(self._head(status, all_headers))

    async def send_chunk(self, data: bytes) -> bool:
        """Write one HTTP chunk and drain it now; False once the client is gone."""
        ok = await self._write(self._frame(data))
        await asyncio.sleep(0)  # let the connection's reader notice an EOF
        return ok and not self.client_gone

    async def wait_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (loop time) unless the client leaves first."""
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0 and not self.client_gone and self._eof_waiter is not None:
            await asyncio.wait({self._eof_waiter}, timeout=delay)
        return not self.client_gone

    async def end_stream(self, last: bytes = b"") -> bool:
        """Write the final chunk (if any) together with the terminating zero-size chunk."""
        frame = self._frame(last) if last else b""
        if self._chunked:
            frame += b"0\r\n\r\n"
        self.finished = await self._write(frame)
        self.cleanup()
        return self.finished

    def cleanup(self) -> None:
        if self._eof_waiter is not None:
            self._eof_waiter.cancel()
            self._eof_waiter = None

    def _frame(self, data: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data

    def _head(self, status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"date: {formatdate(usegmt=True)}",
            "server: nb_mistral-emulator",
            f"x-request-id: {self.request_id}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if not self.keep_alive:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _write(self, data: bytes, half_closed_ok: bool = False) -> bool:
        """Write and drain; a whole response still goes to a client that only shut its side."""
        gone = self._gone or self._writer.transport.is_closing()
        if gone or (self._inbox.eof and not half_closed_ok):
            return False
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError):
            self._gone = True
            return False
        return True


class HTTPServer:
    """Serves ``handler`` on a TCP port; reports requests and abandoned streams."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: Callable[[RecordedRequest], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._on_request = on_request or (lambda _r: None)
        self._on_disconnect = on_disconnect or (lambda: None)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop every open connection now."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve each connection in a task of our own, so that ``close`` may cancel it."""
        task = asyncio.ensure_future(self._serve_connection(reader, writer))
        self._connections[task] = writer
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._connections.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("emulator connection failed", exc_info=task.exception())

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        inbox = _Inbox(reader)
        pump = asyncio.ensure_future(inbox.pump())
        graceful = True
        try:
            while True:
                try:
                    parsed = await self._read_request(inbox)
                except _BadRequest as e:
                    await Responder(writer, inbox, uuid.uuid4().hex, False, False).send_json(
                        e.status, {"detail": HTTPStatus(e.status).phrase}
                    )
                    break
                if parsed is None:
                    break
                request, keep_alive, chunked = parsed
                outcome = await self._respond(request, writer, inbox, keep_alive, chunked)
                if outcome != "keep":
                    graceful = outcome == "close"
                    break
        except (_Closed, ConnectionError, OSError):
            graceful = False
        finally:
            pump.cancel()
            if graceful:
                writer.close()
            else:
                writer.transport.abort()

    async def _respond(
        self,
        request: RecordedRequest,
        writer: asyncio.StreamWriter,
        inbox: _Inbox,
        keep_alive: bool,
        chunked: bool,
    ) -> Literal["keep", "close", "abort"]:
        """Run the handler for one request and say what becomes of the connection."""
        responder = Responder(writer, inbox, uuid.uuid4().hex, keep_alive, chunked)
        self._on_request(request)
        try:
            await self._handler(request, responder)
        except Exception:
            log.exception("emulator handler failed for %s %s", request.method, request.path)
            if responder.started:
                return "abort"
            responder.keep_alive = False
            await responder.send_json(500, {"detail": "Internal Server Error"})
            return "close"
        finally:
            responder.cleanup()
        if responder.streaming and not responder.finished:
            if responder.client_gone:
                self._on_disconnect()
            return "abort"
        if not responder.started:
            responder.keep_alive = False
            await responder.send_json(500, {"detail": "Internal Server Error"})
        if responder.finished and responder.keep_alive and not responder.client_gone:
            return "keep"
        return "close"

    async def _read_request(self, inbox: _Inbox) -> tuple[RecordedRequest, bool, bool] | None:
        raw = await inbox.readuntil(b"\r\n\r\n", _MAX_HEAD)
        if raw is None:
            return None
        lines = raw.decode("latin-1").lstrip("\r\n").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400)
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise _BadRequest(400)
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value

        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(inbox)
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise _BadRequest(400)
            if int(length) > _MAX_BODY:
                raise _BadRequest(413)
            body = await inbox.readexactly(int(length))
        else:
            body = b""

        tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
        http11 = version == "HTTP/1.1"
        keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
        path, _, query = target.partition("?")
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = RecordedRequest(method.upper(), path, headers, parsed, body, query)
        return request, keep_alive, http11

    async def _read_chunked(self, inbox: _Inbox) -> bytes:
        body = bytearray()
        while True:
            size_line = (await inbox.readline()).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadRequest(400) from None
            if size == 0:
                while await inbox.readline() != b"\r\n":
                    pass  # trailers are ignored
                return bytes(body)
            if len(body) + size > _MAX_BODY:
                raise _BadRequest(413)
            body += await inbox.readexactly(size)
            if await inbox.readexactly(2) != b"\r\n":
                raise _BadRequest(400)
