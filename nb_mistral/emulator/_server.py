"""The HTTP layer, on tornado: request recording, JSON answers, streaming, disconnects.

Tornado does the HTTP/1.1 framing (keep-alive, pipelining, chunked bodies both ways, multipart
forms). What stays ours is what a streaming chat API needs: every chunk flushed on its own, a
client that hangs up noticed while the handler is still waiting for its next token
(``on_connection_close``), and the count of streams abandoned that way.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import tornado.httpserver
import tornado.iostream
import tornado.web

from . import _wire
from ._recorder import RecordedRequest, Recorder
from ._state import EmulatorState

HEADER_LIMIT = 64 * 1024  # past it: 431, as before tornado
TORNADO_HEADER_LIMIT = 1024 * 1024  # tornado's own cut (a silent close), kept above ours
MAX_BODY = 512 * 1024 * 1024  # the real Files API takes files up to 512 MB
ALL_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")


def base_url(host: str, port: int) -> str:
    """``http://host:port``, with IPv6 hosts in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class CountingHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's server, counting the TCP connections it accepts (for keep-alive tests)."""

    def initialize(self, *args: Any, recorder: Recorder, **kwargs: Any) -> None:  # type: ignore[override]
        self._recorder = recorder
        super().initialize(*args, **kwargs)

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        self._recorder.connection()
        super().handle_stream(stream, address)


class EmulatorHandler(tornado.web.RequestHandler):
    """Base of every route: records the request, checks method and key, answers in JSON.

    Subclasses list their methods in ``ALLOWED``; anything else is a 405 with ``Allow``.
    """

    SUPPORTED_METHODS = ALL_METHODS
    ALLOWED: tuple[str, ...] = ()
    RECORD_BODY = True

    def initialize(self, state: EmulatorState) -> None:
        self.state = state
        self.request_id = uuid.uuid4().hex
        self._gone: asyncio.Future[None] | None = None
        self.set_header("X-Request-Id", self.request_id)

    def set_default_headers(self) -> None:
        self.clear_header("Content-Type")
        self.set_header("Server", "nb_mistral-emulator")

    def compute_etag(self) -> str | None:
        return None  # the real API sends none

    def prepare(self) -> None:
        self._record()
        if _header_bytes(self.request) > HEADER_LIMIT:
            self._refuse_and_close(431)
        elif self.request.method not in self.ALLOWED:
            allow = ", ".join(self.ALLOWED)
            self.send_json(405, _wire.METHOD_NOT_ALLOWED, [("Allow", allow)])
        elif not self._authorized():
            self.send_json(401, _wire.unauthorized(self.request_id))

    # -- answers ---------------------------------------------------------------------------

    def send_json(self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        """A whole JSON response (compact, non-ASCII kept) with Content-Length."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        for name, value in headers:
            self.set_header(name, value)
        self.finish(_wire.dumps(obj))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's own errors (unknown method, bad body, crash) as JSON ``detail``."""
        self.set_header("Content-Type", "application/json")
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.ALLOWED))
        try:
            phrase = HTTPStatus(status_code).phrase
        except ValueError:
            phrase = "Error"
        self.finish(_wire.dumps({"detail": phrase}))

    # -- disconnects -------------------------------------------------------------------------

    def on_connection_close(self) -> None:
        """Tornado calls this when the client leaves while we are still answering."""
        super().on_connection_close()
        gone = self.gone_future()
        if not gone.done():
            gone.set_result(None)

    @property
    def client_gone(self) -> bool:
        return self._gone is not None and self._gone.done()

    def gone_future(self) -> asyncio.Future[None]:
        """A future that completes when the client closes the connection."""
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        return self._gone

    # -- internals ---------------------------------------------------------------------------

    def _record(self) -> None:
        request = self.request
        headers: dict[str, str] = {}
        for name, value in request.headers.get_all():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body = request.body if self.RECORD_BODY else b""
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.state.recorder.request(
            RecordedRequest(
                request.method or "", request.path, headers, parsed, body, request.query
            )
        )

    def _authorized(self) -> bool:
        key = self.state.api_key
        if not key:
            return True
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), key.encode()
        )

    def _refuse_and_close(self, status: int) -> None:
        """Answer ``status`` and close the connection once the answer is written."""
        connection = self.request.connection
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        written = self.finish(_wire.dumps({"detail": HTTPStatus(status).phrase}))
        close = getattr(connection, "close", None)
        if close is not None:
            written.add_done_callback(lambda _future: close())


class NotFoundHandler(EmulatorHandler):
    """Every path the API does not have."""

    def prepare(self) -> None:
        self._record()
        self.send_json(404, _wire.NOT_FOUND)


class Responder:
    """Writes one streamed response, one flushed HTTP chunk per call to ``send_chunk``."""

    def __init__(self, handler: EmulatorHandler) -> None:
        self._handler = handler
        self.finished = False

    @property
    def client_gone(self) -> bool:
        return self._handler.client_gone

    async def start(self, content_type: str) -> bool:
        handler = self._handler
        handler.set_status(200)
        handler.set_header("Content-Type", content_type)
        handler.set_header("Cache-Control", "no-cache")
        handler.gone_future()
        return await self._flush()

    async def send_chunk(self, data: bytes) -> bool:
        """Write one chunk and flush it now; False once the client is gone."""
        if self.client_gone:
            return False
        self._handler.write(data)
        ok = await self._flush()
        await asyncio.sleep(0)  # let the loop notice a hang-up before the next token
        return ok and not self.client_gone

    async def wait_until(self, deadline: float) -> bool:
        """Sleep until ``deadline`` (loop time) unless the client leaves first."""
        delay = deadline - asyncio.get_running_loop().time()
        if delay > 0 and not self.client_gone:
            await asyncio.wait({self._handler.gone_future()}, timeout=delay)
        return not self.client_gone

    async def end(self, last: bytes) -> bool:
        """Write the last chunk and the chunked terminator."""
        if self.client_gone:
            return False
        self._handler.write(last)
        try:
            await self._handler.finish()
        except tornado.iostream.StreamClosedError:
            return False
        self.finished = True
        return True

    def abandoned(self) -> bool:
        """True if the stream stopped early because the client left (counted once)."""
        if self.finished or not self.client_gone:
            return False
        self._handler.state.recorder.disconnect()
        return True

    async def _flush(self) -> bool:
        try:
            await self._handler.flush()
        except tornado.iostream.StreamClosedError:
            self._handler.on_connection_close()
            return False
        return True


def _header_bytes(request: Any) -> int:
    return sum(len(name) + len(value) + 4 for name, value in request.headers.get_all())
