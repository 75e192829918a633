"""The async client (``chat.stream_async`` / ``complete_async``) against faults and the emulator.

The same contract as the sync path (see ``test_client.py``), for both spellings users write:
``async with await client.chat.stream_async(...)`` (as in the official SDK) and plain
``async with client.chat.stream_async(...)``. Each test drives its own loop with
``asyncio.run``, the way a script would; no pytest plugin is needed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from faulty_server import (
    FaultyServer,
    HangUp,
    Respond,
    bad_event,
    completed,
    cut,
    free_port,
    headers_then_close,
    no_end,
    ok,
    rate_limited,
    stall,
    unauthorized,
    unavailable,
    unprocessable,
)

from nb_mistral import APIError, Mistral, MistralError, RequestError, StreamError, UserMessage
from nb_mistral._models import text_of, thinking_of
from nb_mistral.emulator import Emulator

MODEL = "mistral-small-latest"
MESSAGES = [UserMessage(content="Say hello")]
TOKENS = ["Hello", ",", " world", "!", " How", " are", " you", "?"]
FULL = [*TOKENS, ""]
KEY = "sk-SECRET-" + secrets.token_hex(16)

T = TypeVar("T")
how_param = pytest.mark.parametrize("how", ["await", "plain"])


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def adrain(
    client: Mistral, how: str, **options: Any
) -> tuple[list[Any], MistralError | None]:
    """Stream a reply with ``async with await`` (how="await") or ``async with`` ("plain");
    return the delta contents delivered and the ``MistralError`` that ended it (if any)."""
    delivered: list[Any] = []
    try:
        if how == "await":
            async with await client.chat.stream_async(
                model=MODEL, messages=MESSAGES, **options
            ) as stream:
                async for event in stream:
                    delivered.append(event.data.choices[0].delta.content)
        else:
            async with client.chat.stream_async(
                model=MODEL, messages=MESSAGES, **options
            ) as stream:
                async for event in stream:
                    delivered.append(event.data.choices[0].delta.content)
    except MistralError as exc:
        return delivered, exc
    return delivered, None


def drain(
    url: str, how: str, *, client: dict[str, Any] | None = None, **options: Any
) -> tuple[list[Any], MistralError | None]:
    """``adrain`` on a fresh loop with a fresh client (closed after)."""

    async def main() -> tuple[list[Any], MistralError | None]:
        async with Mistral(server_url=url, **(client or {})) as c:
            return await adrain(c, how, **options)

    return run(main())


# -- HTTP error statuses ------------------------------------------------------------------


@how_param
def test_401_not_retried(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(unauthorized("req-401"), ok(TOKENS))
    delivered, exc = drain(faulty_server.url, how)
    assert isinstance(exc, APIError)
    assert (exc.status_code, exc.message, exc.request_id) == (401, "Unauthorized", "req-401")
    assert delivered == []
    assert faulty_server.request_count == 1


@how_param
def test_422_not_retried(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(unprocessable("max_tokens"), ok(TOKENS))
    delivered, exc = drain(faulty_server.url, how)
    assert isinstance(exc, APIError)
    assert exc.status_code == 422
    assert "max_tokens" in exc.message
    assert delivered == []
    assert faulty_server.request_count == 1


@how_param
def test_429_honours_retry_after(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(rate_limited("1"), ok(TOKENS))
    start = time.monotonic()
    delivered, exc = drain(faulty_server.url, how)
    elapsed = time.monotonic() - start
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2
    assert elapsed >= 0.9


@how_param
def test_503_then_ok(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(unavailable(), ok(TOKENS))
    delivered, exc = drain(faulty_server.url, how)
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


@how_param
@pytest.mark.parametrize(("max_retries", "attempts"), [(2, 3), (0, 1)])
def test_503_until_retries_run_out(
    faulty_server: FaultyServer, how: str, max_retries: int, attempts: int
) -> None:
    faulty_server.script(unavailable())
    delivered, exc = drain(faulty_server.url, how, client={"max_retries": max_retries})
    assert isinstance(exc, APIError)
    assert exc.status_code == 503
    assert delivered == []
    assert faulty_server.request_count == attempts


# -- streams that break after they began --------------------------------------------------


@how_param
@pytest.mark.parametrize("burst", [False, True], ids=["paced", "burst"])
def test_cut_mid_stream(faulty_server: FaultyServer, how: str, burst: bool) -> None:
    faulty_server.script(cut(TOKENS[:5], burst=burst), ok(TOKENS))
    delivered, exc = drain(faulty_server.url, how)
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS[:5]
    assert faulty_server.request_count == 1


@how_param
def test_end_of_body_without_done_or_finish_reason(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(no_end(TOKENS), ok(TOKENS))
    delivered, exc = drain(faulty_server.url, how)
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS
    assert faulty_server.request_count == 1


BAD_EVENTS = {
    "not-a-chunk": b'data: {"not":"a chunk"}\n\n',
    "broken-json": b'data: {"id": "cmpl-faulty", "choices": [\n\n',
}


@how_param
@pytest.mark.parametrize("burst", [False, True], ids=["paced", "burst"])
@pytest.mark.parametrize("payload", list(BAD_EVENTS.values()), ids=list(BAD_EVENTS))
def test_event_that_does_not_decode(
    faulty_server: FaultyServer, how: str, burst: bool, payload: bytes
) -> None:
    faulty_server.script(bad_event(TOKENS[:4], burst=burst, payload=payload), ok(TOKENS))
    delivered, exc = drain(faulty_server.url, how)
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS[:4]
    assert faulty_server.request_count == 1


@how_param
def test_stall_longer_than_timeout(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(stall(TOKENS[:3], seconds=10), ok(TOKENS))
    start = time.monotonic()
    delivered, exc = drain(faulty_server.url, how, client={"timeout_ms": 500})
    elapsed = time.monotonic() - start
    assert isinstance(exc, StreamError)
    assert not isinstance(exc, httpx.HTTPError)
    assert delivered == TOKENS[:3]
    assert 0.4 < elapsed < 0.5 + 3.0
    assert faulty_server.request_count == 1
    assert faulty_server.wait_for_disconnect(5)


@how_param
def test_timeout_is_per_read_not_total(faulty_server: FaultyServer, how: str) -> None:
    tokens = [f" t{i}" for i in range(40)]
    faulty_server.script(ok(tokens, gap=0.05))
    start = time.monotonic()
    delivered, exc = drain(faulty_server.url, how, client={"timeout_ms": 300})
    assert exc is None
    assert delivered == [*tokens, ""]
    assert time.monotonic() - start > 1.5


# -- failures before the body: retried, then RequestError ---------------------------------


@how_param
@pytest.mark.parametrize("behaviour", [headers_then_close(), HangUp()], ids=["headers", "hangup"])
def test_close_before_body_is_retried(
    faulty_server: FaultyServer, how: str, behaviour: Any
) -> None:
    faulty_server.script(behaviour)
    delivered, exc = drain(faulty_server.url, how, client={"max_retries": 1})
    assert isinstance(exc, RequestError)
    assert delivered == []
    assert faulty_server.request_count == 2


@how_param
def test_close_before_body_then_ok(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(headers_then_close(), ok(TOKENS))
    delivered, exc = drain(faulty_server.url, how)
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


@how_param
def test_timeout_before_first_body_byte_is_retried(faulty_server: FaultyServer, how: str) -> None:
    faulty_server.script(stall([], seconds=10))
    client = {"timeout_ms": 300, "max_retries": 1}
    delivered, exc = drain(faulty_server.url, how, client=client)
    assert isinstance(exc, RequestError)
    assert delivered == []
    assert faulty_server.request_count == 2


@how_param
def test_connection_refused(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    attempts = 0
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def counting(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return await original(self, request)

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", counting)
    url = f"http://127.0.0.1:{free_port()}"
    delivered, exc = drain(url, how, client={"max_retries": 1})
    assert isinstance(exc, RequestError)
    assert not isinstance(exc, httpx.HTTPError)
    assert delivered == []
    assert attempts == 2


# -- leaving early: the server sees the client go -----------------------------------------


@how_param
def test_leaving_the_block_early_disconnects(faulty_server: FaultyServer, how: str) -> None:
    tokens = [f" t{i}" for i in range(100)]
    faulty_server.script(ok(tokens, gap=0.05))

    async def main() -> list[Any]:
        delivered: list[Any] = []
        async with Mistral(server_url=faulty_server.url) as client:
            pending = client.chat.stream_async(model=MODEL, messages=MESSAGES)
            async with await pending if how == "await" else pending as stream:
                async for event in stream:
                    delivered.append(event.data.choices[0].delta.content)
                    if len(delivered) == 3:
                        break
            # still inside the client: the connection is closed by the stream, not the client
            assert await asyncio.to_thread(faulty_server.wait_for_disconnect, 5)
        return delivered

    assert run(main()) == tokens[:3]
    time.sleep(0.2)
    assert faulty_server.request_count == 1


def test_cancelling_the_task_disconnects(faulty_server: FaultyServer) -> None:
    """A Stop button cancels the task; the connection must close with it."""
    faulty_server.script(ok([f" t{i}" for i in range(100)], gap=0.05))

    async def main() -> int:
        delivered = 0
        async with Mistral(server_url=faulty_server.url) as client:

            async def consume() -> None:
                nonlocal delivered
                async with client.chat.stream_async(model=MODEL, messages=MESSAGES) as stream:
                    async for _ in stream:
                        delivered += 1

            task = asyncio.create_task(consume())
            while delivered < 3 and not task.done():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.to_thread(faulty_server.wait_for_disconnect, 5)
        return delivered

    assert 3 <= run(main()) < 100
    assert faulty_server.request_count == 1


# -- complete_async and happy paths -------------------------------------------------------


def test_complete_async_is_retried(faulty_server: FaultyServer) -> None:
    faulty_server.script(unavailable(), completed("Hi there"))

    async def main() -> str | None:
        async with Mistral(server_url=faulty_server.url) as client:
            response = await client.chat.complete_async(model=MODEL, messages=MESSAGES)
        return text_of(response.choices[0].message.content)

    assert run(main()) == "Hi there"
    assert faulty_server.request_count == 2


def test_complete_async_reply_that_does_not_decode(faulty_server: FaultyServer) -> None:
    faulty_server.script(Respond(200, b"<html>It works!</html>"))

    async def main() -> None:
        async with Mistral(server_url=faulty_server.url) as client:
            with pytest.raises(MistralError):
                await client.chat.complete_async(model=MODEL, messages=MESSAGES)
            with pytest.raises(MistralError):
                await client.models.list_async()

    run(main())
    assert faulty_server.request_count == 2


@how_param
def test_the_client_works_again_after_faults(faulty_server: FaultyServer, how: str) -> None:
    """Faults must not poison the connection pool: each next stream on the client is whole."""
    faults = [cut(TOKENS[:3]), stall(TOKENS[:3], seconds=10), bad_event(TOKENS[:3])]
    faulty_server.script(*[b for fault in faults for b in (fault, ok(TOKENS))])

    async def main() -> None:
        async with Mistral(server_url=faulty_server.url, timeout_ms=400, max_retries=0) as c:
            for _ in faults:
                delivered, exc = await adrain(c, how)
                assert isinstance(exc, StreamError)
                assert delivered == TOKENS[:3]
                delivered, exc = await adrain(c, how)
                assert exc is None
                assert delivered == FULL

    run(main())
    assert faulty_server.request_count == 6


@how_param
def test_stream_text_equals_complete_text(emulator: Emulator, how: str) -> None:
    async def main() -> tuple[list[Any], Any]:
        async with Mistral(server_url=emulator.url) as client:
            events = []
            pending = client.chat.stream_async(model=MODEL, messages=MESSAGES)
            async with await pending if how == "await" else pending as stream:
                events = [event async for event in stream]
            response = await client.chat.complete_async(model=MODEL, messages=MESSAGES)
            return events, response

    events, response = run(main())
    streamed = "".join(e.data.choices[0].delta.text for e in events)
    assert streamed
    assert streamed == text_of(response.choices[0].message.content)
    assert events[-1].data.choices[0].finish_reason == "stop"
    request = emulator.requests[0]
    assert request.headers["accept"] == "text/event-stream"
    assert request.json["stream"] is True
    assert "authorization" not in request.headers


def test_thinking_chunks_for_a_reasoning_model(emulator: Emulator) -> None:
    model = "magistral-medium-latest"

    async def main() -> tuple[list[Any], Any]:
        async with Mistral(server_url=emulator.url) as client:
            async with client.chat.stream_async(model=model, messages=MESSAGES) as stream:
                deltas = [event.data.choices[0].delta async for event in stream]
            response = await client.chat.complete_async(model=model, messages=MESSAGES)
            return deltas, response

    deltas, response = run(main())
    thinking = "".join(d.thinking for d in deltas)
    text = "".join(d.text for d in deltas)
    assert thinking and text
    assert thinking_of(response.choices[0].message.content) == thinking
    assert text_of(response.choices[0].message.content) == text


def test_one_client_across_loops(emulator: Emulator) -> None:
    """A notebook may drive one client from several loops in turn (``asyncio.run`` twice)."""
    client = Mistral(server_url=emulator.url)

    async def once() -> int:
        async with client.chat.stream_async(model=MODEL, messages=MESSAGES) as stream:
            return len([event async for event in stream])

    assert run(once()) > 2
    assert run(once()) > 2
    run(client.aclose())
    assert emulator.request_count == 2


# -- the key never shows ------------------------------------------------------------------


def exception_texts(exc: BaseException) -> str:
    parts = ["".join(traceback.format_exception(exc))]
    parts += traceback.TracebackException.from_exception(exc, capture_locals=True).format()
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        (unauthorized(), APIError),
        (cut(TOKENS[:2]), StreamError),
        (stall(TOKENS[:2], seconds=10), StreamError),
        (headers_then_close(), RequestError),
    ],
    ids=["401", "cut", "stall", "headers-then-close"],
)
def test_key_not_in_exceptions(
    faulty_server: FaultyServer, behaviour: Any, kind: type[MistralError]
) -> None:
    faulty_server.script(behaviour)
    client = {"api_key": KEY, "timeout_ms": 400, "max_retries": 0}
    _, exc = drain(faulty_server.url, "await", client=client)
    assert isinstance(exc, kind)
    assert faulty_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in exception_texts(exc)


def test_key_sent_on_the_async_path(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(api_key=KEY)
    delivered, exc = drain(emu.url, "plain", client={"api_key": KEY})
    assert exc is None
    assert delivered
    assert emu.requests[0].headers["authorization"] == f"Bearer {KEY}"
