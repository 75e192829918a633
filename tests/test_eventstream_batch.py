"""The batch fast path of ``EventStream``: every event of a network chunk validated in one call.

It must give exactly what validating each event on its own gives (the spec's rule: data
JSON-decoded when it parses, else the raw string), whatever the data tries: two JSON values in
one event, a value opened in one event and closed in the next, a string running across events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nb_mistral import (
    CompletionChunk,
    CompletionEvent,
    EventStream,
    EventStreamAsync,
    StreamError,
    _fastpath,
)
from nb_mistral._fastpath import KEY as _KEY
from nb_mistral._fastpath import batch_validator as _batch_validator

URL = "https://api.example.test/v1/chat/completions"


def chunk_json(content: str, finish: str | None = None, **extra: Any) -> str:
    return json.dumps(
        {
            "id": "c1",
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
            **extra,
        },
        separators=(",", ":"),
    )


def body_of(datas: list[str], done: bool = True) -> bytes:
    text = "".join(f"data: {data}\n\n" for data in datas) + ("data: [DONE]\n\n" if done else "")
    return text.encode()


def response_of(chunks: Iterator[bytes], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream", **(headers or {})},
        content=chunks,
        request=httpx.Request("POST", URL),
    )


def decode(body: bytes, size: int) -> tuple[list[CompletionEvent], StreamError | None]:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    events: list[CompletionEvent] = []
    try:
        with EventStream(response_of(iter(pieces)), CompletionEvent) as stream:
            events.extend(stream)
    except StreamError as exc:
        return events, exc
    return events, None


def expected(datas: list[str]) -> tuple[list[CompletionEvent], bool]:
    """Each event on its own, as the spec says: the events up to the first bad one, and
    whether there is a bad one."""
    events = []
    for data in datas:
        try:
            value: Any = json.loads(data)
        except ValueError:
            value = data
        try:
            events.append(CompletionEvent.model_validate({"data": value}))
        except ValidationError:
            return events, True
    return events, False


A = chunk_json("a")
B = chunk_json("b")
C = chunk_json("c")
OPEN_A = A[:-1]  # A without its closing brace

ADVERSARIAL = {
    "two values in one event": [A, A + "," + B, C],
    "two values and a key": [A, A + ',{"data":' + B + "}", C],
    "trailing key": [A, A[:-1] + '},"x":1', C],
    "value closed by the next event": [OPEN_A + ',"x":{"k":1', '"j":2}}', C],
    "swallowing the next event": [OPEN_A + ',"x":[{"y":1', "2}]}", C],
    "string across events": [OPEN_A + ',"s":"ab', 'cd"}', C],
    "array of two": ["[" + A + "," + B + "]", C],
    "bare string": ['"just a string"', C],
    "empty data": ["", C],
    "all fine": [A, B, C],
}


@pytest.mark.parametrize("size", [1, 7, 100, 1 << 16], ids=["1B", "7B", "100B", "whole"])
@pytest.mark.parametrize("datas", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_batch_gives_what_each_event_alone_gives(datas: list[str], size: int) -> None:
    events, error = decode(body_of(datas), size)
    want, bad = expected(datas)
    assert [e.model_dump() for e in events] == [e.model_dump() for e in want]
    assert (error is not None) == bad


def test_batch_events_are_plain_event_type_instances() -> None:
    datas = [chunk_json(str(i)) for i in range(20)]
    events, error = decode(body_of(datas), 1 << 16)  # one chunk: one batch
    assert error is None
    assert [type(e) for e in events] == [CompletionEvent] * 20
    assert [e.data.choices[0].delta.content for e in events] == [str(i) for i in range(20)]
    assert all(e.model_fields_set == {"data"} for e in events)
    assert events[3] == CompletionEvent(data=CompletionChunk.model_validate_json(datas[3]))


def test_batch_validator_leaves_the_model_untouched() -> None:
    validator = _batch_validator(CompletionEvent)
    assert validator is not None  # else every stream silently takes the slow path
    assert CompletionEvent.__pydantic_complete__ is True
    with pytest.raises(ValidationError):  # the model's own validator knows nothing of _KEY
        CompletionEvent.model_validate({_KEY: json.loads(A)})
    assert CompletionEvent.model_validate({"data": json.loads(A), "other": 1}).data.id == "c1"


# A finish reason anywhere counts: no [DONE] is then no error -----------------------------------

USAGE_ONLY = json.dumps({"id": "c1", "model": "m", "choices": [], "usage": {"total_tokens": 3}})
TWO_CHOICES = json.dumps(
    {
        "id": "c1",
        "model": "m",
        "choices": [
            {"index": 0, "delta": {"content": "x"}, "finish_reason": None},
            {"index": 1, "delta": {"content": ""}, "finish_reason": "stop"},
        ],
    }
)
ESCAPED_KEY = chunk_json("b", "stop").replace("finish_reason", "finish\\u005freason")


@pytest.mark.parametrize("size", [1, 100, 1 << 16], ids=["1B", "100B", "whole"])
@pytest.mark.parametrize(
    "datas",
    [[A, chunk_json("b", "stop"), USAGE_ONLY], [A, TWO_CHOICES, B], [A, ESCAPED_KEY, B]],
    ids=["then-usage-only", "second-choice", "escaped-key"],
)
def test_finish_reason_anywhere_completes_the_stream(datas: list[str], size: int) -> None:
    events, error = decode(body_of(datas, done=False), size)
    assert len(events) == 3
    assert error is None


@pytest.mark.parametrize("size", [1, 100, 1 << 16], ids=["1B", "100B", "whole"])
def test_no_finish_reason_and_no_done_is_an_error(size: int) -> None:
    events, error = decode(body_of([A, B, USAGE_ONLY], done=False), size)
    assert len(events) == 3
    assert isinstance(error, StreamError)


def test_content_encoded_body_is_decoded() -> None:
    """The fast read of raw bytes applies only to unencoded bodies."""
    body = gzip.compress(body_of([A, B, chunk_json("c", "stop")]))
    response = response_of(iter([body[:10], body[10:]]), {"content-encoding": "gzip"})
    with EventStream(response, CompletionEvent) as stream:
        texts = [event.data.choices[0].delta.content for event in stream]
    assert texts == ["a", "b", "c"]


class Flagged(BaseModel):
    """An event type of its own: it says it is the last through ``is_final``."""

    data: Any

    @property
    def is_final(self) -> bool:
        return isinstance(self.data, dict) and self.data.get("last") is True


@pytest.mark.parametrize("size", [1, 1 << 16], ids=["1B", "whole"])
@pytest.mark.parametrize(("last", "fails"), [(True, False), (False, True)], ids=["final", "not"])
def test_other_event_types_say_final_through_is_final(size: int, last: bool, fails: bool) -> None:
    body = body_of(['{"n":1}', json.dumps({"n": 2, "last": last}), '{"n":3}'], done=False)
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    seen = []
    with pytest.raises(StreamError) if fails else contextlib.nullcontext():  # noqa: SIM117
        with EventStream(response_of(iter(pieces)), Flagged) as stream:
            seen.extend(event.data["n"] for event in stream)
    assert seen == [1, 2, 3]


def test_a_subclass_with_its_own_chunk_model_still_sees_finishes() -> None:
    """Finish reasons reported by validation are CompletionEvent's own claim: a subclass whose
    data is another model is asked through ``is_final`` instead."""

    class Choice(BaseModel):
        finish_reason: str | None = None

    class Chunk(BaseModel):
        choices: list[Choice]

    class Sub(CompletionEvent):
        data: Chunk  # type: ignore[assignment]

    body = body_of([chunk_json("a"), chunk_json("b", "stop")], done=False)
    with EventStream(response_of(iter([body])), Sub) as stream:
        events = list(stream)
    assert [e.data.choices[0].finish_reason for e in events] == [None, "stop"]


class Aliased(BaseModel):
    """``data`` with an alias (its own name): the batch path cannot serve it."""

    data: Any = Field(validation_alias="data")


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    data: Any


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [(Aliased, "`data` has an alias"), (Loose, "allows extra fields"), (dict, "not a pydantic")],
)
def test_a_type_without_the_fast_path_says_why_at_debug(
    event_type: type, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The fallback is not silent: the reason goes to the ``nb_mistral.fastpath`` logger, and
    the general path still gives every event."""
    caplog.set_level(logging.DEBUG, logger="nb_mistral.fastpath")
    _fastpath._batch_validators.pop(event_type, None)
    assert _batch_validator(event_type) is None
    (record,) = [r for r in caplog.records if r.name == "nb_mistral.fastpath"]
    assert record.levelno == logging.DEBUG
    assert reason in record.getMessage()
    body = body_of(['{"n":1}', '{"n":2}'])
    with EventStream(response_of(iter([body])), event_type, sentinel="[DONE]") as stream:
        assert len(list(stream)) == 2


def test_the_fast_path_serves_completion_events_without_a_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="nb_mistral.fastpath")
    _fastpath._batch_validators.pop(CompletionEvent, None)
    assert _batch_validator(CompletionEvent) is not None
    assert not [r for r in caplog.records if r.name == "nb_mistral.fastpath"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_after_the_sentinel_only_a_short_tail_is_read(mode: str) -> None:
    """The rest of the body after ``[DONE]`` is read (so the connection can be reused), up to
    a bound: a server that keeps sending after it is not read forever."""
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        yield body_of([A, B])
        while True:
            pulled += 1
            yield b": keep-alive padding " + b"x" * 1000 + b"\n\n"

    async def endless_async() -> AsyncIterator[bytes]:
        for chunk in endless():
            yield chunk

    if mode == "sync":
        with EventStream(response_of(endless()), CompletionEvent) as stream:
            events = list(stream)
    else:

        async def collect() -> list[CompletionEvent]:
            response = response_of(endless_async())  # type: ignore[arg-type]
            async with EventStreamAsync(response, CompletionEvent) as stream:
                return [event async for event in stream]

        events = asyncio.run(collect())
    assert [event.data.choices[0].delta.text for event in events] == ["a", "b"]
    assert 1 <= pulled <= 70  # 64 KB of tail at most
