"""Server-sent events: bytes in, events out, exactly as the WHATWG HTML standard parses them.

No I/O here, so the parser is testable on its own and serves the sync and async streams alike.
The result never depends on how the bytes were chunked: a UTF-8 sequence, a BOM or a CRLF
split across two chunks decodes as if it had come whole.

Chat streams are runs of ``data: {...}`` blocks. Between the first and the last blank line of a
chunk, a run made only of such single-line blocks is cut out at the byte level, with no per-line
Python work; everything else goes through the line-by-line parser. Both give the same events.
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


# Searched for as ints: ``0x0D in data`` is a plain memchr, ``b"\r" in data`` first tries the
# needle as an int and formats an exception.
_CR = 0x0D
_LF = 0x0A

Item = ServerSentEvent | bytes  # bytes: the UTF-8 data (maybe invalid) of a data-only event


class SSEDecoder:
    """Incremental parser: ``feed`` each network chunk, then ``end`` once the body is over.

    Two modes. The line parser holds the state the standard describes (a partial line, an
    event being built, a half UTF-8 sequence, a CR that may be half of a CRLF). Once a blank
    line (LF LF) leaves all of that empty, the decoder switches to raw mode: it only collects
    bytes until the next LF LF, then cuts the collected events at the byte level when they are
    plain ``data:`` lines, or hands them to the line parser when they are anything else. A CR
    sends it back to the line parser, which returns to raw mode at the next LF LF.
    """

    __slots__ = (
        "_after_cr",
        "_data",
        "_decoder",
        "_event",
        "_last_id",
        "_pending",
        "_raw",
        "_raw_ends_lf",
        "_raw_parts",
        "_retry",
        "full_events",
    )

    def __init__(self) -> None:
        # utf-8-sig strips one leading BOM, even split across chunks, and keeps any later one.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._pending: list[str] = []  # pieces of a line whose ending has not arrived
        self._after_cr = False  # the last chunk ended in CR: a leading LF now is not a new line
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None
        # Raw mode starts after the first LF LF, so the BOM question is settled by then.
        self._raw = False
        self._raw_parts: list[bytes] = []  # bytes since the last LF LF (no CR, no LF LF)
        self._raw_ends_lf = False
        self.full_events = 0  # how many items came as ServerSentEvent rather than bare data

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse one chunk of the body; return the events it completed."""
        return [
            ServerSentEvent(item.decode("utf-8", "replace")) if isinstance(item, bytes) else item
            for item in self.feed_items(chunk)
        ]

    def feed_items(self, chunk: bytes) -> list[Item]:
        """``feed`` for the hot path: an event with nothing but data (and no last event id)
        comes as its bare data, UTF-8 ``bytes`` (maybe invalid: decode with replacement)."""
        items: list[Item] = []
        if not self._raw:
            first = chunk.find(b"\n\n")
            if first < 0:
                return self._lines(self._decoder.decode(chunk))
            # Up to LF LF the line parser finishes what it began, and is left with nothing.
            items = self._lines(self._decoder.decode(chunk[: first + 2]))
            chunk = chunk[first + 2 :]
            self._raw = True
            self._raw_ends_lf = False
        if not chunk:
            return items
        parts = self._raw_parts
        if _CR in chunk:
            parts.append(chunk)
            items += self._lines(self._decoder.decode(b"".join(parts)))
            parts.clear()
            self._raw = False
            return items
        last = chunk.rfind(b"\n\n")
        if last < 0 and not (self._raw_ends_lf and chunk[0] == _LF):
            parts.append(chunk)
            self._raw_ends_lf = chunk[-1] == _LF
            return items
        # last is -1 when the LF LF straddles two chunks: its first LF ends the previous part.
        if parts:
            size = len(chunk)
            parts.append(chunk)
            chunk = b"".join(parts)
            parts.clear()
            last += len(chunk) - size
        # chunk[:last] is whole events: plain data lines are cut out here, the rest parsed.
        datas = chunk[6:last].split(b"\n\ndata: ")
        if (
            chunk.startswith(b"data: ")
            and _LF not in b"".join(datas)  # one line each
            and not self._last_id
        ):
            if items:
                items += datas
            else:
                items = datas  # type: ignore[assignment]
        else:
            items += self._lines(self._decoder.decode(chunk[: last + 2]))
        if last + 2 < len(chunk):
            rest = chunk[last + 2 :]
            parts.append(rest)
            self._raw_ends_lf = rest[-1] == _LF
        else:
            self._raw_ends_lf = False
        return items

    def end(self) -> list[ServerSentEvent]:
        """The body is over: an unfinished line and an undispatched event are discarded."""
        self._lines(self._decoder.decode(b"", True))
        self._pending.clear()
        self._data.clear()
        self._raw_parts.clear()
        self._event = ""
        self._retry = None
        return []

    def _lines(self, text: str) -> list[Item]:
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

        events: list[Item] = []
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

    def _dispatch(self) -> Item:
        data = self._data
        text = data[0] if len(data) == 1 else "\n".join(data)
        data.clear()
        if not (self._event or self._last_id or self._retry is not None):
            return text.encode()
        event = ServerSentEvent(text, self._event, self._last_id, self._retry)
        self.full_events += 1
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
