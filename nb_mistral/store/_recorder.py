"""``Recorder``: one request being recorded while it streams.

The hot path only appends a chunk and its arrival time to two flat lists; every
``WRITE_INTERVAL`` of stream (and when the reply ends) it wakes the store's writer thread, which
takes what has accumulated and writes it. So a process killed mid-reply leaves the part that
had arrived (all but the last ``WRITE_INTERVAL``), and the event loop never waits on the disk.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import httpx

from ._key import canonical_json, clean_server_url, request_key
from ._record import RecordStatus, prompt_of, sse_frame
from ._redact import Redactor
from ._tap import ChunkLog, tap

_MAX_ERROR_MESSAGE = 2_000
WRITE_INTERVAL = 0.05  # seconds of stream between writes: what a killed process can lose
CLOSE_GRACE = 0.5  # a tapped stream closed without finish() ends 1-2 of these later, by itself


class _Wakeable(Protocol):
    def submit(self, recorder: Recorder) -> None: ...
    def wake(self) -> None: ...


@dataclass(frozen=True)
class Start:
    """What the record holds from the moment the request begins."""

    id: str
    key: str
    created: float
    server_url: str
    endpoint: str
    model: str
    prompt: str
    request: str  # the body as canonical JSON, redacted
    notebook: str | None
    cell_id: str | None


@dataclass(frozen=True)
class Outcome:
    """How the request ended, as the caller said it, raw: the writer thread turns it into
    columns (JSON, redaction), so ``finish`` costs the caller almost nothing. ``text`` None:
    read the answer back from the events."""

    ended: float
    status: RecordStatus | None  # None: complete if the events ended properly, else stopped
    text: str | None = None
    thinking: str | None = None
    tool_calls: Any = None
    usage: Any = None
    finish_reason: str | None = None
    model: str | None = None
    error_type: str | None = None
    error_message: str | None = None


def json_or_none(value: Any) -> str | None:
    """A reply field (pydantic models, lists of them, dicts) as canonical JSON; None if empty."""
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    elif isinstance(value, (list, tuple)):
        value = [
            item.model_dump(mode="json", exclude_none=True) if hasattr(item, "model_dump") else item
            for item in value
        ]
        if not value:
            return None
    return canonical_json(value)


class Recorder:
    """Feed it the stream (``tap`` the response, or ``event``/``chunk`` by hand), then
    ``finish`` once. Every method is cheap and never raises on account of the store."""

    def __init__(
        self,
        writer: _Wakeable | None,
        *,
        server_url: str,
        endpoint: str,
        body: Mapping[str, Any],
        notebook: str | None = None,
        cell_id: str | None = None,
        redactor: Redactor | None = None,
        key: str | None = None,
    ) -> None:
        self.redactor = redactor or Redactor()
        self.id = uuid.uuid4().hex
        self.created = time.time()
        self.clock_start = time.monotonic()
        # The body is kept as given (shallowly copied) and serialised by the writer thread.
        self._request = (
            server_url,
            endpoint,
            {**body, "messages": list(body.get("messages") or ())},
        )
        self._place = (notebook, cell_id)
        self._key = key
        self.log = ChunkLog()  # appended here, taken from the front by the writer only
        self.outcome: Outcome | None = None
        self.closed_at: float | None = None  # when the tapped response was closed
        self._ending = threading.Lock()
        self._next_due = WRITE_INTERVAL
        self._writer = writer
        if writer is not None:
            writer.submit(self)

    def __repr__(self) -> str:
        state = "streaming"
        if self.outcome is not None:
            state = self.outcome.status.value if self.outcome.status else "ended"
        return f"<Recorder {self.id[:8]} {self._request[2].get('model', '')} ({state})>"

    @cached_property
    def key(self) -> str:
        """The request key (given, or computed on first use)."""
        server_url, endpoint, body = self._request
        return self._key or request_key(server_url, endpoint, body)

    @cached_property
    def start(self) -> Start:
        """The record's first columns; the writer thread computes them."""
        server_url, endpoint, body = self._request
        notebook, cell_id = self._place
        return Start(
            id=self.id,
            key=self.key,
            created=self.created,
            server_url=clean_server_url(server_url),
            endpoint=endpoint,
            model=str(body.get("model", "")),
            prompt=self.redactor.text(prompt_of(body)),
            request=self.redactor.text(canonical_json(body)),
            notebook=notebook,
            cell_id=cell_id,
        )

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    # -- the stream ----------------------------------------------------------------------

    def tap(self, response: httpx.Response) -> httpx.Response:
        """A response to read instead of ``response`` (``EventStream(recorder.tap(r), ...)``);
        every chunk read through it is recorded. Call before anything reads the body."""
        return tap(
            response, self.log, self.clock_start, self._wake, WRITE_INTERVAL, self._stream_closed
        )

    def event(self, data: str) -> None:
        """Record one event's ``data`` payload (for streams that come without raw bytes)."""
        self.chunk(sse_frame(data))

    def chunk(self, data: bytes) -> None:
        """Record raw SSE bytes as they arrived."""
        offset = time.monotonic() - self.clock_start
        self.log.add(offset, data)
        if offset >= self._next_due:
            self._next_due = offset + WRITE_INTERVAL
            self._wake()

    def _wake(self) -> None:
        if self._writer is not None:
            self._writer.wake()

    def _stream_closed(self) -> None:
        """The reader closed the tapped response. ``finish`` normally follows at once; if it
        does not (the client used on its own), the writer ends the record from what the events
        say, ``CLOSE_GRACE`` or a little more later. No wake here: the writer would start
        writing while the caller still has work to do before ``finish``."""
        if self.closed_at is None and self.outcome is None:
            self.closed_at = time.monotonic()

    def finish_from_stream(self) -> None:
        """End the record by what the events say: complete when they ended properly."""
        self._end(Outcome(time.time(), None, None, None, None, None, None, None, None, None))

    # -- the end -------------------------------------------------------------------------

    def finish(
        self,
        status: RecordStatus | str | None = None,
        reply: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """End the record once (later calls are ignored). ``status`` defaults to what ``error``
        implies; ``reply`` is any object with ``text``, ``thinking``, ``tool_calls``,
        ``usage``, ``finish_reason``, ``model`` (a ``Reply``); without one, the text is read
        back from the recorded events."""
        if self.outcome is not None:
            return
        if error is None and reply is not None:
            error = getattr(reply, "error", None)
        resolved = RecordStatus(status) if status is not None else RecordStatus.of_outcome(error)

        def field(name: str) -> Any:
            return getattr(reply, name, None) if reply is not None else None

        text, thinking = field("text"), field("thinking")
        self._end(
            Outcome(
                ended=time.time(),
                status=resolved,
                text=text if isinstance(text, str) else None,
                thinking=thinking if isinstance(thinking, str) else None,
                tool_calls=field("tool_calls"),
                usage=field("usage"),
                finish_reason=field("finish_reason"),
                model=field("model") or None,
                error_type=type(error).__name__ if error is not None else None,
                error_message=str(error)[:_MAX_ERROR_MESSAGE] if error is not None else None,
            )
        )

    def _end(self, outcome: Outcome) -> None:
        """The first ending wins (``finish`` here, or the writer's after a close)."""
        with self._ending:
            if self.outcome is not None:
                return
            self.outcome = outcome
        self._wake()
