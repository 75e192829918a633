"""A scripted HTTP/1.1 server that misbehaves on purpose, for the client's fault tests.

The emulator plays the API well; this server plays it badly, byte by byte: error statuses,
streams cut mid-event, streams that end without ``[DONE]``, undecodable events, stalls, and
connections closed before the body. Each incoming request takes the next behaviour of the
script (the last one repeats). It runs on raw sockets, one thread per connection, so every
byte and every close is exactly what the test asked for, and it records what the client did:
each request, each connection it opened, and each disconnect (the client going away while the
server still had data to send).

Standard library only; see ``tests/conftest.py`` for the ``faulty_server`` fixture.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol

MODEL = "mistral-small-latest"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_HEAD = 64 * 1024


# -- what the server saw ------------------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    """One request as received: header names lower-cased, the body as sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Disconnected(Exception):
    """The client closed its end while the server still had data to send."""


class _Stopped(Exception):
    """The server is shutting down."""


class Conn:
    """One accepted connection, as a behaviour sees it: send bytes, wait, notice the client go."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self.sock = sock
        self._stopping = stopping

    def send(self, data: bytes) -> None:
        """Send every byte, or raise ``_Disconnected`` if the client is gone."""
        if self._stopping.is_set():
            raise _Stopped
        self._check_eof()
        try:
            self.sock.sendall(data)
        except OSError as exc:  # EPIPE, ECONNRESET
            raise _Disconnected from exc

    def wait(self, seconds: float) -> None:
        """Sleep with the socket open, but wake up (``_Disconnected``) if the client leaves."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._stopping.is_set():
                raise _Stopped
            readable, _, _ = select.select([self.sock], [], [], min(left, 0.05))
            if readable and self._eof():
                raise _Disconnected
            if readable:  # the client sent bytes early: keep them for later, just sleep
                time.sleep(min(left, 0.05))

    def _check_eof(self) -> None:
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable and self._eof():
            raise _Disconnected

    def _eof(self) -> bool:
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


LAST_CHUNK = b"0\r\n\r\n"


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Behaviour(Protocol):
    """How to answer one request; returns whether the connection may serve another one."""

    def respond(self, conn: Conn) -> bool: ...


# -- behaviours -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Respond:
    """A whole response with a ``Content-Length`` body (an error, or a non-streamed reply)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def respond(self, conn: Conn) -> bool:
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(self.body))),
            *self.headers,
        ]
        conn.send(_head(self.status, headers) + self.body)
        return True


Ending = Literal["done", "eof", "cut", "stall", "close"]


@dataclass(frozen=True)
class Stream:
    """A chunked SSE response: ``events`` (one HTTP chunk each, ``gap`` seconds apart),
    then an ``ending``:

    - ``done``: ``data: [DONE]`` then the terminating 0-chunk (a good stream);
    - ``eof``: the 0-chunk only (a clean end of body);
    - ``cut``: half of an event in a truncated chunk, then close, with no 0-chunk;
    - ``stall``: keep the socket open and send nothing for ``stall`` seconds, then close;
    - ``close``: close at once (with no events: headers, then close before any body byte).

    With ``burst``, the head, the events and the ending go out in one write, so the client
    likely reads the good events and the fault in the same network chunk.
    """

    events: tuple[bytes, ...]
    ending: Ending = "done"
    gap: float = 0.0
    stall: float = 0.0
    burst: bool = False

    def respond(self, conn: Conn) -> bool:
        pending = bytearray()

        def send(data: bytes) -> None:
            if self.burst:
                pending.extend(data)
            else:
                conn.send(data)

        send(
            _head(
                200,
                [
                    ("content-type", "text/event-stream; charset=utf-8"),
                    ("transfer-encoding", "chunked"),
                    ("cache-control", "no-cache"),
                    ("x-request-id", uuid.uuid4().hex),
                ],
            )
        )
        for i, event in enumerate(self.events):
            if i and self.gap:
                conn.wait(self.gap)
            send(_chunk(event))
        if self.gap and self.ending == "done":
            conn.wait(self.gap)
        if self.ending == "done":
            send(_chunk(sse("[DONE]")) + LAST_CHUNK)
        elif self.ending == "eof":
            send(LAST_CHUNK)
        elif self.ending == "cut":
            partial = sse(chunk_json("never delivered"))
            send(f"{len(partial):x}\r\n".encode() + partial[: len(partial) // 2])
        if pending:
            conn.send(bytes(pending))
        if self.ending == "stall":
            conn.wait(self.stall)
        return self.ending in ("done", "eof")


@dataclass(frozen=True)
class HangUp:
    """Read the request, then close without sending a single byte."""

    def respond(self, conn: Conn) -> bool:
        return False


# -- wire helpers: events and bodies shaped like the real API's ---------------------------


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse(obj: Any) -> bytes:
    """One SSE event with ``obj`` (JSON, or a raw string such as ``[DONE]``) as its data."""
    data = obj.encode() if isinstance(obj, str) else dumps(obj)
    return b"data: " + data + b"\n\n"


def chunk_json(
    content: str,
    *,
    role: str | None = None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` object with one choice whose delta carries ``content``."""
    delta: dict[str, Any] = {"content": content}
    if role is not None:
        delta = {"role": role, **delta}
    obj: dict[str, Any] = {
        "id": "cmpl-faulty",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        obj["usage"] = usage
    return obj


def reply_events(contents: Sequence[str], *, finish: bool) -> tuple[bytes, ...]:
    """One event per delta content (the first also carries the role); with ``finish``, a last
    event with empty content, ``finish_reason: "stop"`` and usage, as the real API ends."""
    events = [
        sse(chunk_json(text, role="assistant" if i == 0 else None))
        for i, text in enumerate(contents)
    ]
    if finish:
        n = len(contents)
        usage = {"prompt_tokens": 3, "total_tokens": 3 + n, "completion_tokens": n}
        events.append(sse(chunk_json("", finish_reason="stop", usage=usage)))
    return tuple(events)


def completion_json(text: str) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` body."""
    return {
        "id": "cmpl-faulty",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


# Behaviour factories, named after what they do to the client.


def ok(contents: Sequence[str], gap: float = 0.0) -> Stream:
    """A good stream: the deltas, a finish reason, ``[DONE]``, the 0-chunk."""
    return Stream(reply_events(contents, finish=True), "done", gap=gap)


def cut(contents: Sequence[str], burst: bool = False) -> Stream:
    """The deltas, then half an event, then the socket closes (no 0-chunk)."""
    return Stream(reply_events(contents, finish=False), "cut", burst=burst)


def no_end(contents: Sequence[str], burst: bool = False) -> Stream:
    """The deltas, then a proper end of body, with neither ``[DONE]`` nor a finish reason."""
    return Stream(reply_events(contents, finish=False), "eof", burst=burst)


def bad_event(
    contents: Sequence[str], burst: bool = False, payload: bytes = b'data: {"not":"a chunk"}\n\n'
) -> Stream:
    """The deltas, then an event that does not decode (``payload``: by default JSON that is
    not a chunk), then more good events and ``[DONE]``."""
    events = (*reply_events(contents, finish=False), payload)
    return Stream(events + reply_events(["after"], finish=True), "done", burst=burst)


def stall(contents: Sequence[str], seconds: float) -> Stream:
    """The deltas, then silence with the socket open for ``seconds``, then a close."""
    return Stream(reply_events(contents, finish=False), "stall", stall=seconds)


def headers_then_close() -> Stream:
    """A 200 head announcing a chunked body, then a close before any body byte."""
    return Stream((), "close")


def error(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> Respond:
    """An error status with a JSON body (``body`` is dumped unless already bytes)."""
    raw = body if isinstance(body, bytes) else dumps(body)
    return Respond(status, raw, tuple(headers))


def unauthorized(request_id: str = "7d9e3c0a52b14f4c9a1f5e6b8c2d4a10") -> Respond:
    """The real API's answer to a bad key."""
    return error(401, {"message": "Unauthorized", "request_id": request_id})


def unprocessable(field_name: str = "temperature") -> Respond:
    """The real API's 422: a pydantic error list under ``message.detail``."""
    detail = [
        {
            "type": "less_than_equal",
            "loc": ["body", field_name],
            "msg": "Input should be less than or equal to 1.5",
            "input": 7,
            "ctx": {"le": 1.5},
            "url": "https://errors.pydantic.dev/2.6/v/less_than_equal",
        }
    ]
    return error(
        422,
        {
            "object": "error",
            "message": {"detail": detail},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )


def rate_limited(retry_after: str | None = "1") -> Respond:
    """429, with a ``Retry-After`` header (seconds) unless None."""
    headers = [("retry-after", retry_after)] if retry_after is not None else []
    body = {
        "object": "error",
        "message": "Requests rate limit exceeded",
        "type": "rate_limited",
        "param": None,
        "code": "1300",
    }
    return error(429, body, headers)


def unavailable() -> Respond:
    """503, as a load balancer in front of the API sends it."""
    body = {
        "object": "error",
        "message": "Service unavailable",
        "type": "service_unavailable",
        "param": None,
        "code": None,
    }
    return error(503, body)


def completed(text: str) -> Respond:
    """A 200 non-streamed completion."""
    return Respond(200, dumps(completion_json(text)))


# -- the server -----------------------------------------------------------------------------


class FaultyServer:
    """The scripted server, listening on ``127.0.0.1`` on an ephemeral port.

    Use: ``with FaultyServer(unavailable(), ok(["Hi"])) as server:`` then point a client at
    ``server.url``; ``server.script(...)`` sets a new script and forgets what was recorded.
    """

    def __init__(self, *behaviours: Behaviour) -> None:
        self._behaviours: list[Behaviour] = list(behaviours) or [ok(["Hello"])]
        self._lock = threading.Condition()
        self._requests: list[SeenRequest] = []
        self._disconnect_times: list[float] = []
        self._connections = 0
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accepter: threading.Thread | None = None
        self._handlers: list[threading.Thread] = []
        self._open: set[socket.socket] = set()
        self.port = 0

    # -- script and records -----------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> FaultyServer:
        """Set the behaviours for the next requests, one each (the last repeats)."""
        if not behaviours:
            raise ValueError("give at least one behaviour")
        with self._lock:
            self._behaviours = list(behaviours)
            self._requests.clear()
            self._disconnect_times.clear()
            self._connections = 0
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted (since the last ``script``): a client that
        reuses its connection makes one for any number of sequential requests."""
        with self._lock:
            return self._connections

    @property
    def disconnects(self) -> int:
        """How many times the client left while the server still had data to send."""
        with self._lock:
            return len(self._disconnect_times)

    @property
    def disconnect_times(self) -> list[float]:
        """``time.monotonic()`` of each disconnect, as the server noticed it."""
        with self._lock:
            return list(self._disconnect_times)

    def wait_for_disconnect(self, timeout: float = 5.0, n: int = 1) -> bool:
        """Block until at least ``n`` disconnects were seen; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._disconnect_times) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> FaultyServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept, name="faulty-accept", daemon=True)
        self._accepter.start()
        return self

    def stop(self) -> None:
        """Stop accepting, shut every open connection down and join the threads."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            open_socks = list(self._open)
        for sock in open_socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in [self._accepter, *self._handlers]:
            if thread is not None:
                thread.join(timeout=5)

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FaultyServer {self.url} requests={self.request_count}>"

    # -- serving ----------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.05)
            if not readable:
                continue
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.add(sock)
                self._connections += 1
            if self._stopping.is_set():  # stop() may have missed it: shut it down here
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            thread = threading.Thread(
                target=self._serve, args=(sock,), name="faulty-conn", daemon=True
            )
            self._handlers.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Conn(sock, self._stopping)
        buffer = bytearray()
        try:
            while not self._stopping.is_set():
                request = _read_request(sock, buffer)
                if request is None:
                    return
                with self._lock:
                    self._requests.append(request)
                    index = len(self._requests) - 1
                    behaviour = self._behaviours[min(index, len(self._behaviours) - 1)]
                    self._lock.notify_all()
                try:
                    if not behaviour.respond(conn):
                        return
                except _Disconnected:
                    with self._lock:
                        self._disconnect_times.append(time.monotonic())
                        self._lock.notify_all()
                    return
        except (_Stopped, OSError):
            return
        finally:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()


def _read_request(sock: socket.socket, buffer: bytearray) -> SeenRequest | None:
    """Read one request (``Content-Length`` bodies); None if the client closed first."""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEAD:
            return None
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end]).decode("latin-1")
    del buffer[: end + 4]
    request_line, *header_lines = head.split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    body = bytes(buffer[:length])
    del buffer[:length]
    return SeenRequest(method, path, headers, body)


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
