"""WHATWG server-sent-events conformance, at every layer and under every chunking.

Each case is fed whole, at every 2-way split point and byte by byte, (a) to ``SSEDecoder``,
(b) to ``EventStream`` over a real ``httpx.Response`` and (c) to ``EventStreamAsync``: the spec
promises that the result never depends on how the network cut the bytes, and the hard cases
(a CRLF, a BOM or a UTF-8 sequence split across chunks) only show up at particular split points.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sse_events import Ev, typed

from nb_mistral import (
    CompletionEvent,
    EventStream,
    EventStreamAsync,
    ServerSentEvent,
    SSEDecoder,
    StreamError,
)

BOM = b"\xef\xbb\xbf"
URL = "https://api.example.test/v1/chat/completions"


def ev(data: str, event: str = "", id: str = "", retry: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(data, event, id, retry)


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    events: list[ServerSentEvent]  # what SSEDecoder dispatches
    sentinel: bool = False  # run the streams with sentinel="[DONE]"


CASES = [
    # Line endings.
    Case("lf", b"data: a\n\n", [ev("a")]),
    Case("cr", b"data: a\r\r", [ev("a")]),
    Case("crlf", b"data: a\r\n\r\n", [ev("a")]),
    Case(
        "mixed-endings",
        b"data: a\rdata: b\ndata: c\r\n\r\ndata: d\n\rdata: e\r\n\n",
        [ev("a\nb\nc"), ev("d"), ev("e")],
    ),
    # At the split after "\r" the CRLF arrives in two chunks: still one line ending.
    Case("crlf-one-ending", b"data: a\r\ndata: b\n\n", [ev("a\nb")]),
    Case("cr-cr-is-two-endings", b"data: a\r\rdata: b\r\r", [ev("a"), ev("b")]),
    Case("lf-cr-is-two-endings", b"data: a\n\rdata: b\n\r", [ev("a"), ev("b")]),
    Case("cr-then-crlf", b"data: a\r\r\ndata: b\r\n\r\n", [ev("a"), ev("b")]),
    Case("leading-blank-lines", b"\r\n\n\rdata: a\r\n\r\n", [ev("a")]),
    Case("trailing-cr-at-eof-ends-line", b"data: a\n\r", [ev("a")]),
    # Byte order marks.
    Case("bom", BOM + b"data: a\n\n", [ev("a")]),
    Case("bom-crlf", BOM + b"data: a\r\n\r\n", [ev("a")]),
    Case("bom-only", BOM, []),
    Case("bom-then-blank", BOM + b"\n\ndata: a\n\n", [ev("a")]),
    Case("second-bom-in-field-name", BOM + BOM + b"data: a\n\ndata: b\n\n", [ev("b")]),
    Case("bom-in-data-value-kept", b"data: " + BOM + b"a\n\n", [ev("\ufeffa")]),
    Case(
        "bom-later-in-stream", b"data: a\n\n" + BOM + b"data: b\n\ndata: c\n\n", [ev("a"), ev("c")]
    ),
    # Comments.
    Case("comments", b": hello\ndata: a\n: another\n\n:\n\n", [ev("a")]),
    Case("comment-looks-like-data", b": data: x\n\n", []),
    # Data lines.
    Case("multiline-data", b"data: a\ndata: b\ndata: c\n\n", [ev("a\nb\nc")]),
    Case("data-empty-middle-line", b"data: a\ndata:\ndata: b\n\n", [ev("a\n\nb")]),
    Case("data-no-colon", b"data\n\n", [ev("")]),
    Case("data-colon-empty", b"data:\n\n", [ev("")]),
    Case("data-colon-space-empty", b"data: \n\n", [ev("")]),
    Case("data-two-empty", b"data\ndata\n\n", [ev("\n")]),
    Case("data-colons-in-value", b"data: a:b: c\n\n", [ev("a:b: c")]),
    Case("data-nul", b"data: a\x00b\n\n", [ev("a\x00b")]),
    # Leading space: exactly one stripped, and only a space.
    Case("one-space-stripped", b"data:  a\n\n", [ev(" a")]),
    Case("no-space", b"data:a\n\n", [ev("a")]),
    Case("tab-kept", b"data:\ta\n\n", [ev("\ta")]),
    Case("trailing-space-kept", b"data: a \n\n", [ev("a ")]),
    Case("event-one-space-stripped", b"event:  x\ndata: a\n\n", [ev("a", " x")]),
    # Event type.
    Case("event-type", b"event: foo\ndata: a\n\n", [ev("a", "foo")]),
    Case("event-type-reset", b"event: foo\ndata: a\n\ndata: b\n\n", [ev("a", "foo"), ev("b")]),
    Case("event-reset-by-empty-block", b"event: foo\n\ndata: b\n\n", [ev("b")]),
    Case("event-last-wins", b"event: a\nevent: b\ndata: x\n\n", [ev("x", "b")]),
    # Last event id.
    Case(
        "id-persists",
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n",
        [ev("a", id="1"), ev("b", id="1"), ev("c", id="2")],
    ),
    Case(
        "id-with-nul-ignored",
        b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
        [ev("a", id="1"), ev("b", id="1")],
    ),
    Case(
        "id-empty-resets",
        b"id: 1\ndata: a\n\nid\ndata: b\n\nid: 3\ndata: c\n\nid:\ndata: d\n\n",
        [ev("a", id="1"), ev("b"), ev("c", id="3"), ev("d")],
    ),
    Case("id-in-block-without-data", b"id: 7\n\ndata: a\n\n", [ev("a", id="7")]),
    # Retry: ASCII digits only.
    Case("retry-digits", b"retry: 10\ndata: a\n\n", [ev("a", retry=10)]),
    Case("retry-no-space", b"retry:10\ndata: a\n\n", [ev("a", retry=10)]),
    Case("retry-leading-zeros", b"retry: 007\ndata: a\n\n", [ev("a", retry=7)]),
    Case("retry-letter", b"retry: 1a\ndata: a\n\n", [ev("a")]),
    Case("retry-negative", b"retry: -1\ndata: a\n\n", [ev("a")]),
    Case("retry-empty", b"retry: \ndata: a\n\n", [ev("a")]),
    Case("retry-no-value", b"retry\ndata: a\n\n", [ev("a")]),
    Case("retry-two-spaces", b"retry:  10\ndata: a\n\n", [ev("a")]),
    Case("retry-decimal", b"retry: 1.5\ndata: a\n\n", [ev("a")]),
    Case("retry-arabic-indic", "retry: ١٢\ndata: a\n\n".encode(), [ev("a")]),
    Case("retry-superscript", "retry: ²\ndata: a\n\n".encode(), [ev("a")]),
    Case("retry-bad-keeps-good", b"retry: 5\nretry: x\ndata: a\n\n", [ev("a", retry=5)]),
    # Unknown and space-prefixed fields.
    Case("unknown-fields", b"foo: bar\ndata: a\nDATA: b\nData: c\n\n", [ev("a")]),
    Case("space-prefixed-field", b" data: x\n\n", []),
    Case("space-prefixed-after-data", b"data: a\n data: x\n\n", [ev("a")]),
    Case("space-before-colon", b"data : x\n\n", []),
    # UTF-8.
    Case("multibyte", "data: é€😀\n\n".encode(), [ev("é€😀")]),
    Case("invalid-byte", b"data: a\xffb\n\n", [ev("a\ufffdb")]),
    Case("invalid-lead", b"data: \xc3(\n\n", [ev("\ufffd(")]),
    Case("truncated-before-newline", b"data: \xe2\x82\n\n", [ev("\ufffd")]),
    Case("truncated-4-byte", b"data: \xf0\x9f\x98\n\n", [ev("\ufffd")]),
    Case("surrogate-encoded", b"data: \xed\xa0\x80\n\n", [ev("\ufffd" * 3)]),
    Case("overlong", b"data: \xc0\xaf\n\n", [ev("\ufffd" * 2)]),
    Case("above-max", b"data: \xf4\x90\x80\x80\n\n", [ev("\ufffd" * 4)]),
    Case("invalid-in-field-name", b"da\xffta: x\n\ndata: y\n\n", [ev("y")]),
    Case("truncated-at-eof", b"data: a\n\ndata: \xe2\x82", [ev("a")]),
    # Characters that other line splitters treat as line breaks.
    Case(
        "not-line-endings-in-value",
        "data: a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei\n\n".encode(),
        [ev("a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei")],
    ),
    *(
        # If the character ended a line, "X\n" would hold a blank line and dispatch "a".
        Case(
            f"not-a-line-ending-{ord(ch):04x}", f"data: a\n{ch}\ndata: b\n\n".encode(), [ev("a\nb")]
        )
        for ch in "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e"
    ),
    # End of stream and dispatch.
    Case("open-event-at-eof", b"data: a\n\ndata: b\n", [ev("a")]),
    Case("open-line-at-eof", b"data: a", []),
    Case("line-ended-by-cr-at-eof", b"data: a\r", []),
    Case("block-without-data", b"event: foo\nid: 1\nretry: 5\n\n", []),
    Case(
        "block-without-data-then-data",
        b"event: foo\nid: 1\nretry: 5\n\ndata: x\n\n",
        [ev("x", id="1")],
    ),
    Case("empty-stream", b"", []),
    Case("only-blank-lines", b"\n\n\r\n\r", []),
    # JSON data (decoded by the streams).
    Case(
        "json-values",
        b'data: {"a":1}\n\ndata: 5\n\ndata: hello\n\ndata: "s"\n\n'
        b"data: [1, 2]\n\ndata: null\n\ndata: true\n\ndata: {bad\n\n",
        [*map(ev, ['{"a":1}', "5", "hello", '"s"', "[1, 2]", "null", "true", "{bad"])],
    ),
    Case(
        "json-across-data-lines", b'data: {"a":\ndata: [1,\ndata: 2]}\n\n', [ev('{"a":\n[1,\n2]}')]
    ),
    Case(
        "json-with-fields",
        b'event: e\nid: 9\nretry: 3\ndata: {"k":"v"}\n\n',
        [ev('{"k":"v"}', "e", "9", 3)],
    ),
    # The sentinel.
    Case(
        "sentinel-ends",
        b"data: a\n\ndata: [DONE]\n\ndata: b\n\n",
        [ev("a"), ev("[DONE]"), ev("b")],
        sentinel=True,
    ),
    Case(
        "sentinel-no-space-crlf",
        b"data: 1\r\n\r\ndata:[DONE]\r\n\r\ndata: 2\r\n\r\n",
        [ev("1"), ev("[DONE]"), ev("2")],
        sentinel=True,
    ),
    Case(
        "sentinel-with-event-field",
        b"event: end\ndata: [DONE]\n\ndata: x\n\n",
        [ev("[DONE]", "end"), ev("x")],
        sentinel=True,
    ),
    Case(
        "sentinel-lookalikes-are-data",
        b"data: [DONE] \n\ndata: [DONE]\ndata: x\n\ndata: [done]\n\ndata: [DONE]\n\n",
        [ev("[DONE] "), ev("[DONE]\nx"), ev("[done]"), ev("[DONE]")],
        sentinel=True,
    ),
    Case(
        "sentinel-first-then-garbage",
        b"data: [DONE]\n\ndata: a\n\ndata: {open",
        [ev("[DONE]"), ev("a")],
        sentinel=True,
    ),
]


def _expected_stream(case: Case) -> list[Ev]:
    out = []
    for sse in case.events:
        if case.sentinel and sse.data == "[DONE]":
            break
        out.append(typed(sse))
    return out


def chunkings(raw: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """Whole, every 2-way split, and byte by byte."""
    yield "whole", [raw]
    for i in range(1, len(raw)):
        yield f"split@{i}", [raw[:i], raw[i:]]
    if len(raw) > 1:
        yield "bytes", [raw[i : i + 1] for i in range(len(raw))]


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.end()
    return events


class Counting:
    """An iterator of chunks that counts how many were pulled (to see reading stop early)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def sse_response(content: Any) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=content,
        request=httpx.Request("POST", URL),
    )


def _chunks_until_sentinel(chunks: list[bytes]) -> int:
    """How many chunks it takes to complete the sentinel event."""
    decoder = SSEDecoder()
    for n, chunk in enumerate(chunks, 1):
        if any(sse.data == "[DONE]" for sse in decoder.feed(chunk)):
            return n
    raise AssertionError("no sentinel in the case")


def _check_stream(case: Case, how: str, chunks: list[bytes], got: list[Ev], source: Counting):
    """Nothing after the sentinel is delivered, but the (short) rest of the body is read to
    its end, so that a pooled connection can serve the next request."""
    assert got == _expected_stream(case), how
    if case.sentinel:
        assert _chunks_until_sentinel(chunks) <= len(chunks), how
        assert source.pulled == len(chunks), how


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decoder(case: Case) -> None:
    for how, chunks in chunkings(case.raw):
        assert decode(chunks) == case.events, how


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_event_stream(case: Case) -> None:
    sentinel = "[DONE]" if case.sentinel else None
    for how, chunks in chunkings(case.raw):
        source = Counting(chunks)
        response = sse_response(iter(source))
        got = list(EventStream(response, Ev, sentinel=sentinel))
        _check_stream(case, how, chunks, got, source)
        assert response.is_closed, how


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_event_stream_async(case: Case) -> None:
    sentinel = "[DONE]" if case.sentinel else None

    async def run() -> None:
        for how, chunks in chunkings(case.raw):
            source = Counting(chunks)
            response = sse_response(source.__aiter__())
            got = [event async for event in EventStreamAsync(response, Ev, sentinel=sentinel)]
            _check_stream(case, how, chunks, got, source)
            assert response.is_closed, how

    asyncio.run(run())


def test_every_case_name_is_unique() -> None:
    assert len({case.name for case in CASES}) == len(CASES)


def test_crlf_split_across_chunks_is_one_line_ending() -> None:
    """The case named in the spec, spelled out: ``data: a\\r`` + ``\\ndata: b\\n\\n``."""
    assert decode([b"data: a\r", b"\ndata: b\n\n"]) == [ev("a\nb")]
    assert decode([b"data: a\r", b"\n", b"\n"]) == [ev("a")]
    assert decode([b"data: a\r", b"", b"\n\r\n"]) == [ev("a")]


def test_bom_split_across_chunks() -> None:
    assert decode([BOM[:1], BOM[1:] + b"data: a\n\n"]) == [ev("a")]
    assert decode([BOM[:2], BOM[2:] + b"data: a\n\n"]) == [ev("a")]
    assert decode([BOM[:1], BOM[1:2], BOM[2:], b"data: a\n\n"]) == [ev("a")]
    # A BOM prefix that turns out not to be a BOM is invalid UTF-8, not dropped.
    assert decode([b"\xef\xbb", b"data: a\n\n"]) == []  # "\ufffddata" is an unknown field
    assert decode([b"data: a\n\n\xef\xbb", b"\xbfdata: b\n\n"]) == [ev("a")]


def test_multibyte_split_decodes_whole() -> None:
    raw = "data: 😀€é\n\n".encode()
    for i in range(len(raw)):
        assert decode([raw[:i], raw[i:]]) == [ev("😀€é")]
    assert "\ufffd" not in decode([raw[i : i + 1] for i in range(len(raw))])[0].data


def test_json_data_types() -> None:
    raw = b'data: {"a":1}\n\ndata: 5\n\ndata: hello\n\ndata: 1.5\n\ndata: [1]\n\ndata: null\n\n'
    got = [e.data for e in EventStream(sse_response(iter([raw])), Ev, sentinel=None)]
    assert got == [{"a": 1}, 5, "hello", 1.5, [1], None]


# Closing the response ----------------------------------------------------------------------

BODY = b"".join(b"data: %d\n\n" % i for i in range(10))


def _chunks() -> list[bytes]:
    return [BODY[i : i + 10] for i in range(0, len(BODY), 10)]


def test_leaving_with_early_closes() -> None:
    source = Counting(_chunks())
    response = sse_response(iter(source))
    with EventStream(response, Ev, sentinel=None) as stream:
        assert next(stream).data == 0
        assert not response.is_closed
    assert response.is_closed
    assert source.pulled < len(source.chunks)


def test_break_inside_with_closes() -> None:
    response = sse_response(iter(_chunks()))
    seen = []
    with EventStream(response, Ev, sentinel=None) as stream:
        for event in stream:
            seen.append(event.data)
            if event.data == 2:
                break
    assert seen == [0, 1, 2]
    assert response.is_closed


def test_exception_inside_with_closes() -> None:
    response = sse_response(iter(_chunks()))
    with pytest.raises(KeyError), EventStream(response, Ev, sentinel=None) as stream:
        for _ in stream:
            raise KeyError("boom")
    assert response.is_closed


def test_close_before_iterating_closes() -> None:
    response = sse_response(iter(_chunks()))
    with EventStream(response, Ev, sentinel=None):
        pass
    assert response.is_closed


def test_async_leaving_with_early_closes() -> None:
    async def run() -> None:
        source = Counting(_chunks())
        response = sse_response(source.__aiter__())
        async with EventStreamAsync(response, Ev, sentinel=None) as stream:
            assert (await anext(stream)).data == 0
            assert not response.is_closed
        assert response.is_closed
        assert source.pulled < len(source.chunks)

    asyncio.run(run())


def test_async_break_inside_with_closes() -> None:
    async def run() -> None:
        response = sse_response(Counting(_chunks()).__aiter__())
        async with EventStreamAsync(response, Ev, sentinel=None) as stream:
            async for event in stream:
                if event.data == 3:
                    break
        assert response.is_closed

    asyncio.run(run())


def test_async_exception_inside_with_closes() -> None:
    async def run() -> None:
        response = sse_response(Counting(_chunks()).__aiter__())
        with pytest.raises(KeyError):
            async with EventStreamAsync(response, Ev, sentinel=None) as stream:
                async for _ in stream:
                    raise KeyError("boom")
        assert response.is_closed

    asyncio.run(run())


# Endings of a chat stream --------------------------------------------------------------------


def chat_chunk(content: str, finish_reason: str | None = None) -> bytes:
    obj = {
        "id": "f" * 32,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish_reason}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _collect_sync(chunks: list[bytes]) -> tuple[list[str], BaseException | None, httpx.Response]:
    response = sse_response(iter(chunks))
    texts: list[str] = []
    try:
        with EventStream(response, CompletionEvent) as stream:
            for event in stream:
                texts.append(event.data.choices[0].delta.text)
    except StreamError as exc:
        return texts, exc, response
    return texts, None, response


def _collect_async(chunks: list[bytes]) -> tuple[list[str], BaseException | None, httpx.Response]:
    async def gen() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def run() -> tuple[list[str], BaseException | None, httpx.Response]:
        response = sse_response(gen())
        texts: list[str] = []
        try:
            async with EventStreamAsync(response, CompletionEvent) as stream:
                async for event in stream:
                    texts.append(event.data.choices[0].delta.text)
        except StreamError as exc:
            return texts, exc, response
        return texts, None, response

    return asyncio.run(run())


COLLECTORS = pytest.mark.parametrize(
    "collect", [_collect_sync, _collect_async], ids=["sync", "async"]
)
CHUNKINGS = pytest.mark.parametrize("size", [1, 7, 1 << 16], ids=["1B", "7B", "whole"])


def _split(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


@COLLECTORS
@CHUNKINGS
def test_truncated_stream_raises_after_all_events(collect: Any, size: int) -> None:
    body = chat_chunk("a") + chat_chunk("b") + b'data: {"id": "f'  # cut inside the third
    texts, error, response = collect(_split(body, size))
    assert texts == ["a", "b"]
    assert isinstance(error, StreamError)
    assert "[DONE]" in str(error)
    assert response.is_closed


@COLLECTORS
@CHUNKINGS
def test_finish_reason_without_done_ends_fine(collect: Any, size: int) -> None:
    body = chat_chunk("a") + chat_chunk("b", "stop")
    texts, error, response = collect(_split(body, size))
    assert (texts, error) == (["a", "b"], None)
    assert response.is_closed


@COLLECTORS
@CHUNKINGS
def test_done_ends_fine_without_finish_reason(collect: Any, size: int) -> None:
    body = chat_chunk("a") + b"data: [DONE]\n\n" + chat_chunk("never")
    texts, error, _ = collect(_split(body, size))
    assert (texts, error) == (["a"], None)


@COLLECTORS
@CHUNKINGS
@pytest.mark.parametrize(
    "bad",
    [b'data: {"id": 1}\n\n', b"data: not json\n\n", b'data: {"choices": "x"}\n\n'],
    ids=["wrong-type", "not-json", "missing-fields"],
)
def test_undecodable_event_raises_after_the_events_before_it(
    collect: Any, size: int, bad: bytes
) -> None:
    body = chat_chunk("a") + chat_chunk("b") + bad + chat_chunk("c") + b"data: [DONE]\n\n"
    texts, error, response = collect(_split(body, size))
    assert texts == ["a", "b"]
    assert isinstance(error, StreamError)
    assert "CompletionEvent" in str(error)
    assert response.is_closed


def test_cut_connection_raises_stream_error_after_events() -> None:
    """A transport failure mid-body is a StreamError, never a bare httpx exception."""

    def cut() -> Iterator[bytes]:
        yield chat_chunk("a") + chat_chunk("b")[:20]
        raise httpx.RemoteProtocolError("peer closed connection")

    response = sse_response(cut())
    texts = []
    with pytest.raises(StreamError, match="connection"):  # noqa: SIM117 - the with is tested
        with EventStream(response, CompletionEvent) as stream:
            for event in stream:
                texts.append(event.data.choices[0].delta.text)
    assert texts == ["a"]
    assert response.is_closed


def test_cut_connection_raises_stream_error_after_events_async() -> None:
    async def cut() -> AsyncIterator[bytes]:
        yield chat_chunk("a") + chat_chunk("b")[:20]
        raise httpx.ReadError("connection reset")

    async def run() -> tuple[list[str], httpx.Response]:
        response = sse_response(cut())
        texts = []
        with pytest.raises(StreamError, match="connection"):
            async with EventStreamAsync(response, CompletionEvent) as stream:
                async for event in stream:
                    texts.append(event.data.choices[0].delta.text)
        return texts, response

    texts, response = asyncio.run(run())
    assert texts == ["a"]
    assert response.is_closed
