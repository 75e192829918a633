"""Differential: our EventStream and the official ``mistralai`` SDK's yield the same chat events.

The SDK (v3) is the reference users compare us with, so on well-formed realistic streams we must
agree with it event for event, whatever the chunking. The last tests pin down the cases where
we deliberately differ, because the SDK's behaviour there loses or garbles data.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from nb_mistral import CompletionEvent, EventStream, EventStreamAsync, StreamError

httpx2 = pytest.importorskip("httpx2")
sdk_streaming = pytest.importorskip("mistralai.client.utils.eventstreaming")
sdk_models = pytest.importorskip("mistralai.client.models")
sdk_unmarshal = pytest.importorskip("mistralai.client.utils.unmarshal_json_response")

URL = "https://api.mistral.ai/v1/chat/completions"
PIECES = [
    "Hello",
    "!",
    " Here",
    " is",
    " a",
    " **bold**",
    " claim",
    ":",
    "\n\n",
    "```python\n",
    'print("hi")\n',
    "```\n",
    " café",
    " naïve",
    " 😀",
    " 👩‍💻",
    " 日本語",
    " Ελληνικά",
    ' "quoted"',
    " back\\slash",
    "\ttab",
    " line\r\nbreak",
    " \u2028sep",
    " data: not a field",
    "\n",
    " -",
    " 1.",
    " {json}",
    " [DONE]",
]


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def realistic_stream(n_deltas: int, seed: int = 0, *, tool_call: bool = True) -> bytes:
    """A chat stream as the API sends it: role first, deltas, thinking, tools, usage, [DONE]."""
    rnd = random.Random(seed)
    cid = f"{rnd.getrandbits(128):032x}"
    created = 1_780_944_347

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "magistral-medium-latest",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return _sse(obj)

    out = [chunk({"role": "assistant", "content": ""})]
    for i in range(3):
        thought = [{"type": "text", "text": f"Step {i}: the user wants “{rnd.choice(PIECES)}”."}]
        out.append(chunk({"content": [{"type": "thinking", "thinking": thought}]}))
    out.append(chunk({"content": [{"type": "text", "text": "Answer:"}]}))
    for _ in range(n_deltas):
        out.append(chunk({"content": rnd.choice(PIECES)}))
    finish = "stop"
    if tool_call:
        call = {
            "id": "D681PevKs",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "°C"}'},
            "index": 0,
        }
        out.append(chunk({"content": "", "tool_calls": [call]}))
        finish = "tool_calls"
    usage = {"prompt_tokens": 17, "total_tokens": 17 + n_deltas, "completion_tokens": n_deltas}
    out.append(chunk({"content": ""}, finish, usage=usage))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def split(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


# -- Both sides -------------------------------------------------------------------------------


def _ours_response(content: Any) -> httpx.Response:
    headers = {"content-type": "text/event-stream"}
    return httpx.Response(200, headers=headers, content=content, request=httpx.Request("POST", URL))


def _sdk_response(content: Any) -> Any:
    headers = {"content-type": "text/event-stream"}
    return httpx2.Response(
        200, headers=headers, content=content, request=httpx2.Request("POST", URL)
    )


def _sdk_decoder(response: Any) -> Any:
    """The decoder exactly as ``mistralai``'s ``chat.stream`` builds it."""
    return lambda raw: sdk_unmarshal.unmarshal_json_response(
        sdk_models.CompletionEvent, response, raw
    )


def ours(chunks: list[bytes] | Iterator[bytes]) -> list[CompletionEvent]:
    with EventStream(_ours_response(iter(chunks)), CompletionEvent) as stream:
        return list(stream)


def sdk(chunks: list[bytes] | Iterator[bytes]) -> list[Any]:
    response = _sdk_response(iter(chunks))
    stream = sdk_streaming.EventStream(response, _sdk_decoder(response), sentinel="[DONE]")
    with stream:
        return list(stream)


def _without_none(value: Any) -> Any:
    """The SDK leaves unset fields out of model_dump, ours writes None: compare what is set."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def normalised(event: Any) -> dict[str, Any]:
    dump = event.data.model_dump()
    usage = dump.get("usage") or {}
    return {
        "id": dump["id"],
        "model": dump["model"],
        "object": dump.get("object"),
        "created": dump.get("created"),
        "choices": [
            {
                "index": choice["index"],
                "role": choice["delta"].get("role"),
                "content": _without_none(choice["delta"].get("content")),
                "tool_calls": _without_none(choice["delta"].get("tool_calls")),
                "finish_reason": choice.get("finish_reason"),
            }
            for choice in dump["choices"]
        ],
        "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
    }


# -- Agreement --------------------------------------------------------------------------------

BODY = realistic_stream(400, seed=1)
SHORT_BODY = realistic_stream(12, seed=2)


@pytest.mark.parametrize(
    ("body", "size"),
    [(BODY, len(BODY)), (BODY, 1024), (BODY, 7), (SHORT_BODY, 1)],
    ids=["whole", "1KB", "7B", "1B-short"],
)
def test_same_events_as_the_sdk(body: bytes, size: int) -> None:
    chunks = split(body, size)
    mine = [normalised(e) for e in ours(chunks)]
    theirs = [normalised(e) for e in sdk(chunks)]
    assert len(mine) == body.count(b"\n\n") - 1  # every event but [DONE]
    assert mine == theirs


@pytest.mark.parametrize("seed", range(5))
def test_same_events_as_the_sdk_other_streams(seed: int) -> None:
    body = realistic_stream(60, seed=seed, tool_call=seed % 2 == 0)
    rnd = random.Random(seed)
    chunks, i = [], 0
    while i < len(body):  # irregular chunk sizes, as a network delivers them
        n = rnd.choice([1, 2, 3, 5, 64, 300, 1500])
        chunks.append(body[i : i + n])
        i += n
    assert [normalised(e) for e in ours(chunks)] == [normalised(e) for e in sdk(chunks)]


def _sdk_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.text for part in content if part.type == "text")
    return ""  # unset


def test_same_text_thinking_and_tools_as_the_sdk() -> None:
    """The parts a notebook shows, spelled out, so a normalisation bug cannot hide them."""
    mine = ours(split(BODY, 1024))
    theirs = sdk(split(BODY, 1024))
    text = "".join(e.data.choices[0].delta.text for e in mine)
    sdk_text = "".join(_sdk_text(e.data.choices[0].delta.content) for e in theirs)
    assert text == sdk_text
    assert "😀" in text or "café" in text
    assert "".join(e.data.choices[0].delta.thinking for e in mine).startswith("Step 0")
    assert mine[-2].data.choices[0].delta.tool_calls[0].function.name == "get_weather"
    assert mine[-1].data.choices[0].finish_reason == theirs[-1].data.choices[0].finish_reason
    assert mine[-1].data.usage.total_tokens == theirs[-1].data.usage.total_tokens == 17 + 400


def test_async_same_events_as_the_sdk() -> None:
    chunks = split(BODY, 1024)

    async def gen() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def run() -> tuple[list[Any], list[Any]]:
        async with EventStreamAsync(_ours_response(gen()), CompletionEvent) as stream:
            mine = [e async for e in stream]
        response = _sdk_response(gen())
        async with sdk_streaming.EventStreamAsync(
            response, _sdk_decoder(response), sentinel="[DONE]"
        ) as stream:
            theirs = [e async for e in stream]
        return mine, theirs

    mine, theirs = asyncio.run(run())
    assert [normalised(e) for e in mine] == [normalised(e) for e in theirs]
    assert len(mine) == len(ours(chunks))


# -- Where we differ on purpose ---------------------------------------------------------------


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    """A stray invalid byte (a buggy proxy, a truncated code point) costs one character."""
    good = realistic_stream(5, seed=3, tool_call=False)
    body = good.replace(b'"text":"Answer:"', b'"text":"Answ\xe9r:"')  # Latin-1 é: invalid UTF-8
    assert body != good
    mine = ours(split(body, 7))
    text = "".join(e.data.choices[0].delta.text for e in mine)
    assert text.startswith("Answ\ufffdr:")
    assert len(mine) == good.count(b"\n\n") - 1
    # The SDK decodes each event with bytes.decode() (strict): the whole stream dies.
    with pytest.raises(UnicodeDecodeError):
        sdk(split(body, 7))


@pytest.mark.parametrize("cut", [1, 2], ids=["1+2", "2+1"])
def test_bom_split_across_chunks_keeps_the_first_event(cut: int) -> None:
    body = b"\xef\xbb\xbf" + SHORT_BODY
    chunks = [body[:cut], *split(body[cut:], 1024)]
    mine = ours(chunks)
    assert [normalised(e) for e in mine] == [normalised(e) for e in ours([SHORT_BODY])]
    assert mine[0].data.choices[0].delta.role == "assistant"
    # The SDK strips a BOM only when a chunk starts with all three bytes: otherwise the first
    # field is "\ufeffdata", unknown, and the first event (the one with the role) is lost.
    theirs = sdk(chunks)
    assert [normalised(e) for e in theirs] == [normalised(e) for e in mine[1:]]


def test_truncated_stream_is_an_error() -> None:
    """No [DONE] and no finish_reason: the reply is incomplete, and the user must know."""
    events = SHORT_BODY.split(b"\n\n")
    body = b"\n\n".join(events[:8]) + b"\n\n"  # cut cleanly after 8 events
    mine: list[CompletionEvent] = []
    with pytest.raises(StreamError, match="incomplete"):  # noqa: SIM117 - the with is tested
        with EventStream(_ours_response(iter(split(body, 7))), CompletionEvent) as stream:
            for event in stream:
                mine.append(event)
    assert len(mine) == 8
    # The SDK ends silently with the same 8 events: a cut reply looks like a whole one.
    theirs = sdk(split(body, 7))
    assert [normalised(e) for e in theirs] == [normalised(e) for e in mine]


def test_unterminated_last_event_is_not_dispatched() -> None:
    """An event without its blank line may be cut anywhere; WHATWG discards it, so do we."""
    events = SHORT_BODY.split(b"\n\n")
    body = b"\n\n".join(events[:8]) + b"\n"  # the 8th event's blank line never came
    mine: list[CompletionEvent] = []
    with pytest.raises(StreamError):  # noqa: SIM117 - the with is tested
        with EventStream(_ours_response(iter([body])), CompletionEvent) as stream:
            mine.extend(stream)
    assert len(mine) == 7
    # The SDK dispatches whatever is left at the end of the body as an event.
    assert len(sdk([body])) == 8


def test_cut_connection_is_a_stream_error() -> None:
    body = SHORT_BODY[: len(SHORT_BODY) // 2]
    complete = body.count(b"\n\n")

    def cut(error: type[Exception]) -> Iterator[bytes]:
        yield from split(body, 100)
        raise error("peer closed connection without sending complete message body")

    mine: list[CompletionEvent] = []
    with pytest.raises(StreamError, match="connection") as info:  # noqa: SIM117
        with EventStream(_ours_response(cut(httpx.RemoteProtocolError)), CompletionEvent) as s:
            mine.extend(s)
    assert len(mine) == complete
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    # The SDK lets the transport's own exception escape (an httpx2 error, not a MistralError).
    theirs: list[Any] = []
    response = _sdk_response(cut(httpx2.RemoteProtocolError))
    with pytest.raises(httpx2.RemoteProtocolError):
        for event in sdk_streaming.EventStream(response, _sdk_decoder(response), "[DONE]"):
            theirs.append(event)
    assert [normalised(e) for e in theirs] == [normalised(e) for e in mine]
