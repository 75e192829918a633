"""Server-sent events: bytes in, events out, exactly as the WHATWG HTML standard parses them.

No I/O here, so the parser is testable on its own and serves the sync and async streams alike.
The result never depends on how the bytes were chunked: a UTF-8 sequence, a BOM or a CRLF
split across two chunks decodes as if it had come whole.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple


class ServerSentEvent(NamedTuple):
    """One dispatched event. Empty ``event``/``id`` mean the field was not given."""

    data: str
    event: str = ""
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Incremental parser: ``feed`` each network chunk, then ``end`` once the body is over."""

    __slots__ = ("_after_cr", "_data", "_decoder", "_event", "_last_id", "_pending", "_retry")

    def __init__(self) -> None:
        # utf-8-sig strips one leading BOM, even split across chunks, and keeps any later one.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._pending: list[str] = []  # pieces of a line whose ending has not arrived
        self._after_cr = False  # the last chunk ended in CR: a leading LF now is not a new line
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse one chunk of the body; return the events it completed."""
        return self._lines(self._decoder.decode(chunk))

    def end(self) -> list[ServerSentEvent]:
        """The body is over: an unfinished line and an undispatched event are discarded."""
        self._lines(self._decoder.decode(b"", True))
        self._pending.clear()
        self._data.clear()
        self._event = ""
        self._retry = None
        return []

    def _lines(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if self._after_cr:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            self._after_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        pending = self._pending
        if len(lines) == 1:
            pending.append(text)
            return []
        if pending:
            pending.append(lines[0])
            lines[0] = "".join(pending)
            pending.clear()
        last = lines.pop()
        if last:
            pending.append(last)

        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(self._dispatch())
                else:
                    self._event = ""
                    self._retry = None
            elif line[:6] == "data: ":
                data.append(line[6:])
            else:
                self._field(line)
        return events

    def _dispatch(self) -> ServerSentEvent:
        data = self._data
        text = data[0] if len(data) == 1 else "\n".join(data)
        data.clear()
        event = ServerSentEvent(text, self._event, self._last_id, self._retry)
        self._event = ""
        self._retry = None
        return event

    def _field(self, line: str) -> None:
        colon = line.find(":")
        if colon == 0:
            return  # a comment
        if colon < 0:
            name, value = line, ""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
