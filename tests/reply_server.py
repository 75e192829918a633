"""Loopback servers for the browser security tests: one that replies with chosen text, one
that counts every request a page makes to it.

``ReplyServer`` plays Mistral's chat API (``/v1/models``, streamed
``/v1/chat/completions``): the last user message names a reply (``PAYLOAD <name> <split>
<tag>``) and the server streams that reply's text as the API does, whole, in the chunks the
case gives, or split at random points (seeded by the tag, so a failure replays). Every
``alert(1)``/``confirm(1)``/``prompt(1)`` in the text becomes ``alert(<tag>)`` and the
``{CANARY}`` placeholder becomes a URL of the canary server with the tag in its path, so a
dialog or a request says which cell caused it.

``CanaryServer`` answers everything with a tiny image and records each request.

Standard library only (``http.server``), one thread per connection.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MODEL = "mistral-small-latest"
CANARY_PLACEHOLDER = "{CANARY}"
_DIALOG_CALL = re.compile(r"\b(alert|confirm|prompt)(\s*[(`]\s*)1(\s*[)`])")
_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class Split(Enum):
    """How a reply's text is cut into deltas."""

    AS_GIVEN = "given"  # the case's own chunks, else the whole text in one delta
    RANDOM = "random"  # cut at random points, seeded by the tag


@dataclass(frozen=True)
class Case:
    """A reply the server can stream: its text, optionally its own chunks, and a pace."""

    name: str
    text: str
    chunks: tuple[str, ...] | None = None
    deltas_per_second: float | None = None  # None: as fast as the connection takes them


def prompt_for(name: str, split: Split, tag: int) -> str:
    """The user message that asks the server for a case."""
    return f"PAYLOAD {name} {split.value} {tag}"


_PROMPT = re.compile(r"PAYLOAD (\S+) (given|random) (\d+)")


def random_split(text: str, seed: int, pieces: int | None = None) -> list[str]:
    """``text`` cut at random points (reproducible from ``seed``); never an empty piece."""
    if len(text) < 2:
        return [text]
    rng = random.Random(seed)
    count = pieces if pieces is not None else rng.randint(2, min(len(text), 12))
    cuts = sorted(rng.sample(range(1, len(text)), min(count - 1, len(text) - 1)))
    bounds = [0, *cuts, len(text)]
    return [text[start:end] for start, end in itertools.pairwise(bounds)]


def _event(content: str, *, first: bool = False, finish: bool = False) -> bytes:
    delta: dict[str, Any] = {"content": content}
    if first:
        delta = {"role": "assistant", **delta}
    obj: dict[str, Any] = {
        "id": "cmpl-reply-server",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if finish else None}],
    }
    if finish:
        obj["usage"] = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    # ensure_ascii: lone surrogates and NUL travel as JSON escapes, as a real server sends them
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


@dataclass(frozen=True)
class SeenRequest:
    """A request the canary got."""

    method: str
    path: str
    headers: dict[str, str]
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Base:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 run in a thread, as a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class CanaryServer(_Base):
    """Counts every request; answers each with a 1x1 GIF."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []
        super().__init__(_CanaryHandler)

    def record(self, request: SeenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._requests)

    def url_for(self, tag: int) -> str:
        return f"{self.url}/c{tag}"


def tag_of(path: str) -> int | None:
    """The tag a canary URL carries (``/c<tag>...``), if any."""
    found = re.match(r"/c(\d+)", path)
    return int(found.group(1)) if found else None


class _CanaryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        owner: CanaryServer = self.server.owner  # type: ignore[attr-defined]
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner.record(SeenRequest(self.command, self.path, headers, time.monotonic()))
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "image/gif")
        self.send_header("content-length", str(len(_GIF)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(_GIF)

    do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ReplyServer(_Base):
    """Streams the text of named cases as Mistral chat replies."""

    def __init__(self, cases: Sequence[Case], canary: CanaryServer) -> None:
        self.cases = {case.name: case for case in cases}
        self.canary = canary
        self._lock = threading.Lock()
        self.served: list[tuple[str, Split, int]] = []
        super().__init__(_ReplyHandler)

    def text_for(self, name: str, tag: int) -> str:
        """The text a case streams for ``tag``: dialogs and canary URLs carry the tag."""
        text = self.cases[name].text.replace(CANARY_PLACEHOLDER, self.canary.url_for(tag))
        return _DIALOG_CALL.sub(lambda m: f"{m.group(1)}{m.group(2)}{tag}{m.group(3)}", text)

    def deltas_for(self, name: str, split: Split, tag: int) -> list[str]:
        case, text = self.cases[name], self.text_for(name, tag)
        if split is Split.RANDOM:
            return random_split(text, seed=tag)
        if case.chunks is not None:
            return [self._tagged(chunk, tag) for chunk in case.chunks]
        return [text]

    def _tagged(self, chunk: str, tag: int) -> str:
        chunk = chunk.replace(CANARY_PLACEHOLDER, self.canary.url_for(tag))
        return _DIALOG_CALL.sub(lambda m: f"{m.group(1)}{m.group(2)}{tag}{m.group(3)}", chunk)

    def note(self, name: str, split: Split, tag: int) -> None:
        with self._lock:
            self.served.append((name, split, tag))


def _parse_prompt(body: bytes) -> tuple[str, Split, int] | None:
    request = json.loads(body)
    users = [m for m in request.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    found = _PROMPT.search(content if isinstance(content, str) else json.dumps(content))
    if found is None:
        return None
    return found.group(1), Split(found.group(2)), int(found.group(3))


class _ReplyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/v1/models"):
            card = {"id": MODEL, "object": "model", "created": 1_700_000_000, "owned_by": "t"}
            self._json(200, {"object": "list", "data": [card]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        owner: ReplyServer = self.server.owner  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        asked = _parse_prompt(body) if self.path.startswith("/v1/chat/completions") else None
        if asked is None or asked[0] not in owner.cases:
            self._json(404, {"object": "error", "message": "no such case", "type": "t"})
            return
        name, split, tag = asked
        owner.note(name, split, tag)
        self._stream(owner.deltas_for(name, split, tag), owner.cases[name].deltas_per_second)

    def _stream(self, deltas: list[str], per_second: float | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-request-id", uuid.uuid4().hex)
        self.end_headers()
        try:
            for data in _paced(_events(deltas), per_second):
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            done = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(done), done))
        except OSError:  # the client went away (Stop): nothing more to say
            self.close_connection = True


def _events(deltas: list[str]) -> Iterator[bytes]:
    for index, delta in enumerate(deltas):
        yield _event(delta, first=index == 0)
    yield _event("", finish=True)


def _paced(events: Iterator[bytes], per_second: float | None) -> Iterator[bytes]:
    """Events on an absolute schedule (``per_second``), batched into writes of ~10 ms."""
    if not per_second:
        batch: list[bytes] = []
        for event in events:
            batch.append(event)
            if len(batch) >= 64:
                yield b"".join(batch)
                batch = []
        if batch:
            yield b"".join(batch)
        return
    start, sent = time.monotonic(), 0
    pending: list[bytes] = []
    for event in events:
        pending.append(event)
        due = start + (sent + len(pending)) / per_second
        if due - time.monotonic() > 0.01 or len(pending) >= 256:
            yield b"".join(pending)
            sent += len(pending)
            pending = []
            _sleep_until(due - 0.01)
    if pending:
        yield b"".join(pending)


def _sleep_until(deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
    delay = deadline - clock()
    if delay > 0:
        time.sleep(delay)
