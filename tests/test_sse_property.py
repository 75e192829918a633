"""Property: the events never depend on the chunking, and match an independent reference parser.

The reference below is written straight from the WHATWG texts (the Encoding standard's UTF-8
decoder and the HTML standard's event-stream interpretation), one character at a time over the
whole stream, with none of the incremental tricks of ``SSEDecoder``: if both agree on random
streams full of hard cases, the tricks are right.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
from sse_events import Ev, typed

from nb_mistral import EventStream, EventStreamAsync, ServerSentEvent, SSEDecoder, StreamError

BOM = b"\xef\xbb\xbf"
SETTINGS = settings(max_examples=200, deadline=None)

# -- The reference ----------------------------------------------------------------------------


def whatwg_utf8_decode(raw: bytes) -> str:
    """The Encoding standard's "UTF-8 decode": strip one BOM, then its UTF-8 decoder."""
    if raw[:3] == BOM:
        raw = raw[3:]
    out: list[str] = []
    code_point = needed = seen = 0
    lower, upper = 0x80, 0xBF
    i = 0
    while i < len(raw):
        byte = raw[i]
        i += 1
        if needed == 0:
            if byte <= 0x7F:
                out.append(chr(byte))
            elif 0xC2 <= byte <= 0xDF:
                needed, code_point = 1, byte & 0x1F
            elif 0xE0 <= byte <= 0xEF:
                if byte == 0xE0:
                    lower = 0xA0
                elif byte == 0xED:
                    upper = 0x9F
                needed, code_point = 2, byte & 0xF
            elif 0xF0 <= byte <= 0xF4:
                if byte == 0xF0:
                    lower = 0x90
                elif byte == 0xF4:
                    upper = 0x8F
                needed, code_point = 3, byte & 0x7
            else:
                out.append("\ufffd")
            continue
        if not lower <= byte <= upper:
            code_point = needed = seen = 0
            lower, upper = 0x80, 0xBF
            i -= 1  # "restore byte to ioQueue"
            out.append("\ufffd")
            continue
        lower, upper = 0x80, 0xBF
        code_point = (code_point << 6) | (byte & 0x3F)
        seen += 1
        if seen == needed:
            out.append(chr(code_point))
            code_point = needed = seen = 0
    if needed:
        out.append("\ufffd")
    return "".join(out)


def reference_parse(raw: bytes) -> list[ServerSentEvent]:
    """HTML's event-stream interpretation, over the whole decoded stream.

    ``retry`` is attached to the event of its own block (the convention of ``SSEDecoder``; for a
    browser it only sets the reconnection time) and, like the event type, is reset by every
    blank line.
    """
    text = whatwg_utf8_decode(raw)
    lines: list[str] = []
    line = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\r":  # CR, or CRLF: one line ending
            lines.append(line)
            line = ""
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif char == "\n":
            lines.append(line)
            line = ""
        else:
            line += char
        i += 1
    # Whatever is in `line` now never got its line ending: discarded at the end of the stream.

    events = []
    data = event_type = last_id = ""
    retry: int | None = None
    for line in lines:
        if line == "":
            if data == "":
                data = event_type = ""
            else:
                if data.endswith("\n"):
                    data = data[:-1]
                events.append(ServerSentEvent(data, event_type, last_id, retry))
                data = event_type = ""
            retry = None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id":
            if "\x00" not in value:
                last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


def test_reference_utf8_matches_known_answers() -> None:
    """Spot checks of the reference itself, from the Encoding standard's examples."""
    assert whatwg_utf8_decode(BOM + BOM + b"a") == "\ufeffa"
    assert whatwg_utf8_decode(b"\xed\xa0\x80") == "\ufffd" * 3
    assert whatwg_utf8_decode(b"\xf0\x9f\x98") == "\ufffd"
    assert whatwg_utf8_decode(b"\xf0\x9f\x98a") == "\ufffda"
    assert whatwg_utf8_decode(b"\xe2\x82\xac\xc0\xaf") == "€\ufffd\ufffd"
    assert whatwg_utf8_decode("😀é".encode()) == "😀é"


def test_reference_parser_known_answers() -> None:
    assert reference_parse(b"data: a\r\ndata: b\r\rid: 1\rdata: c\n\n") == [
        ServerSentEvent("a\nb"),
        ServerSentEvent("c", id="1"),
    ]
    assert reference_parse(b"data\ndata\n\nevent: x\n\ndata: y\n") == [ServerSentEvent("\n")]


# -- Random streams ---------------------------------------------------------------------------

FIELDS = [
    b"data: x",
    b"data:y",
    b"data",
    b"data:",
    b"data:  two spaces",
    b'data: {"a": 1}',
    b"data: 5",
    b"data: [1,",
    b"data: 2]",
    b"data: [DONE]",
    b"event: e",
    b"event:",
    b"event:  spaced",
    b"id: 1",
    b"id:  2",
    b"id: 2\x00",
    b"id",
    b"retry: 15",
    b"retry: 1x",
    "retry: ١".encode(),
    b": comment",
    b":",
    b" data: z",
    b"foo: bar",
    b"dat",
    b"a: b",
    b"",
]
ENDINGS = [b"\n", b"\r", b"\r\n"]
ODD = [
    BOM,
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98",
    "é".encode(),
    "€".encode(),
    "😀".encode(),
    "\u2028".encode(),
    "\x85".encode(),
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\x00",
    b" ",
    b":",
]

line = st.tuples(
    st.sampled_from(FIELDS),
    st.lists(st.sampled_from(ODD), max_size=2).map(b"".join),
    st.sampled_from(ENDINGS),
).map(b"".join)
# Mostly whole blocks (lines, then a blank line), so that most streams dispatch events, mixed
# with stray line endings and odd bytes between lines.
block = st.tuples(st.lists(line, min_size=1, max_size=4).map(b"".join), st.sampled_from(ENDINGS))
stray = st.sampled_from([*ENDINGS, *ODD, b"data: [DONE]\n\n"])
token = st.one_of(block.map(b"".join), block.map(b"".join), line, stray)
streams = st.tuples(
    st.sampled_from([b"", b"", BOM, BOM[:2]]), st.lists(token, max_size=25).map(b"".join)
).map(b"".join)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A stream and one random way of cutting it (empty chunks included)."""
    raw = draw(streams)
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    bounds = [0, *cuts, len(raw)]
    return raw, [raw[a:b] for a, b in itertools.pairwise(bounds)]


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.end()
    return events


def bytewise(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


@SETTINGS
@given(chunked())
def test_decoder_matches_reference_under_any_chunking(sample: tuple[bytes, list[bytes]]) -> None:
    raw, chunks = sample
    expected = reference_parse(raw)
    assert decode([raw]) == expected
    assert decode(chunks) == expected
    assert decode(bytewise(raw)) == expected


# -- The same through EventStream / EventStreamAsync ------------------------------------------


def response(content: Any) -> httpx.Response:
    return httpx.Response(200, content=content, request=httpx.Request("GET", "https://x.test/"))


def run_sync(chunks: list[bytes], sentinel: str | None) -> tuple[list[Ev], bool]:
    """The events, and whether the stream raised StreamError at its end."""
    events: list[Ev] = []
    try:
        with EventStream(response(iter(chunks)), Ev, sentinel=sentinel) as stream:
            events.extend(stream)
    except StreamError:
        return events, True
    return events, False


def run_async(chunks: list[bytes], sentinel: str | None) -> tuple[list[Ev], bool]:
    async def content() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def run() -> tuple[list[Ev], bool]:
        events: list[Ev] = []
        try:
            async with EventStreamAsync(response(content()), Ev, sentinel=sentinel) as stream:
                async for event in stream:
                    events.append(event)
        except StreamError:
            return events, True
        return events, False

    return asyncio.run(run())


@SETTINGS
@given(chunked(), st.sampled_from([None, "[DONE]"]))
def test_event_stream_matches_reference_under_any_chunking(
    sample: tuple[bytes, list[bytes]], sentinel: str | None
) -> None:
    raw, chunks = sample
    reference = reference_parse(raw)
    expected = []
    for sse in reference:
        if sse.data == sentinel:
            break
        expected.append(typed(sse))
    # With a sentinel, a stream without it is truncated (Ev never says it is final).
    truncated = sentinel is not None and len(expected) == len(reference)
    assert run_sync([raw], sentinel) == (expected, truncated)
    assert run_sync(chunks, sentinel) == (expected, truncated)
    assert run_sync(bytewise(raw), sentinel) == (expected, truncated)
    assert run_async(chunks, sentinel) == (expected, truncated)
