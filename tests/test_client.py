"""The client (``Mistral.chat`` / ``Mistral.models``), sync and async, against faults and the
emulator: one suite, each test run by every ``driver`` (sync; async as ``async with await
client.chat.stream_async(...)`` as in the official SDK; async as plain ``async with``).

Each fault case pins down three things a user relies on: the exception class (always a
``MistralError``, never a bare httpx one), exactly which deltas were delivered before it
(nothing that arrived is lost, nothing is duplicated), and how many requests the server saw
(retried before the body, never after streaming began, never after a read timeout). Retry waits
go to a recorder instead of sleeping (see ``Waits``); the key's secrecy is in
``test_key_secrecy.py``, the retry policy's arithmetic in ``test_retry.py``.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from client_drivers import FULL, MESSAGES, MODEL, TOKENS, AsyncDriver, Driver, Waits
from faulty_server import (
    FaultyServer,
    HangUp,
    Respond,
    Stream,
    bad_event,
    completed,
    cut,
    error,
    free_port,
    headers_then_close,
    no_end,
    ok,
    rate_limited,
    reply_events,
    sse,
    stall,
    unauthorized,
    unavailable,
    unprocessable,
)

from nb_mistral import (
    APIError,
    ConfigurationError,
    Mistral,
    MistralError,
    NoAPIKeyError,
    RequestError,
    StreamError,
    SystemMessage,
)
from nb_mistral._models import text_of, thinking_of
from nb_mistral.emulator import Emulator

KEY = "sk-test-key-0123456789abcdef"


@pytest.fixture
def connect(
    faulty_server: FaultyServer, driver: Driver, waits: Waits
) -> Iterator[Callable[..., Mistral]]:
    """Clients pointed at the faulty server, waiting on ``waits`` (closed after the test)."""
    clients: list[Mistral] = []

    def make(max_retries: int = 2, **kwargs: Any) -> Mistral:
        client = Mistral(
            server_url=faulty_server.url, max_retries=waits.policy(max_retries), **kwargs
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        driver.close(client)


# -- HTTP error statuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "request_id"),
    [
        (unauthorized("7d9e3c0a52b14f4c9a1f5e6b8c2d4a10"), "7d9e3c0a52b14f4c9a1f5e6b8c2d4a10"),
        (error(401, {"message": "Unauthorized"}, [("x-request-id", "hdr-id-1")]), "hdr-id-1"),
    ],
    ids=["id-in-body", "id-in-header"],
)
def test_401_is_an_api_error_and_not_retried(
    faulty_server: FaultyServer,
    connect: Callable[..., Mistral],
    driver: Driver,
    behaviour: Any,
    request_id: str,
) -> None:
    faulty_server.script(behaviour, ok(TOKENS))
    delivered, exc = driver.drain(connect())
    assert isinstance(exc, APIError)
    assert (exc.status_code, exc.message, exc.request_id) == (401, "Unauthorized", request_id)
    assert "Unauthorized" in exc.body
    assert repr(exc).startswith("APIError(status_code=401")
    assert delivered == []
    assert faulty_server.request_count == 1


def test_422_is_readable_and_not_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    faulty_server.script(unprocessable("temperature"), ok(TOKENS))
    delivered, exc = driver.drain(connect(), temperature=0.3)
    assert isinstance(exc, APIError)
    assert exc.status_code == 422
    assert "temperature" in exc.message
    assert "less than or equal" in exc.message
    assert "temperature" in str(exc)
    assert delivered == []
    assert faulty_server.request_count == 1


def test_429_honours_retry_after_then_completes(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, waits: Waits
) -> None:
    faulty_server.script(rate_limited("1"), ok(TOKENS))
    delivered, exc = driver.drain(connect())
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2
    assert waits.seconds == [1.0]


def test_retry_after_as_an_http_date(
    faulty_server: FaultyServer, driver: Driver, waits: Waits
) -> None:
    now = 1_800_000_000.0
    when = email.utils.formatdate(now + 7, usegmt=True)
    faulty_server.script(rate_limited(when), ok(TOKENS))
    client = Mistral(server_url=faulty_server.url, max_retries=waits.policy(clock=lambda: now))
    delivered, exc = driver.drain(client)
    driver.close(client)
    assert exc is None
    assert delivered == FULL
    assert waits.seconds == [7.0]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retried_statuses(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, status: int
) -> None:
    faulty_server.script(
        error(status, {"message": "try again"}, [("retry-after", "0")]), ok(TOKENS)
    )
    delivered, exc = driver.drain(connect())
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


@pytest.mark.parametrize("status", [400, 403, 404, 405, 409])
def test_other_4xx_not_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, status: int
) -> None:
    faulty_server.script(error(status, {"detail": "nope"}, [("retry-after", "0")]), ok(TOKENS))
    delivered, exc = driver.drain(connect())
    assert isinstance(exc, APIError)
    assert (exc.status_code, exc.message) == (status, "nope")
    assert delivered == []
    assert faulty_server.request_count == 1


@pytest.mark.parametrize(("max_retries", "attempts"), [(2, 3), (0, 1)])
def test_503_until_retries_run_out(
    faulty_server: FaultyServer,
    connect: Callable[..., Mistral],
    driver: Driver,
    waits: Waits,
    max_retries: int,
    attempts: int,
) -> None:
    faulty_server.script(unavailable())
    delivered, exc = driver.drain(connect(max_retries=max_retries))
    assert isinstance(exc, APIError)
    assert exc.status_code == 503
    assert exc.message == "Service unavailable"
    assert delivered == []
    assert faulty_server.request_count == attempts
    assert len(waits.seconds) == max_retries
    if max_retries:  # backing off: each wait longer than the last, jitter included
        assert 0 < waits.seconds[0] < waits.seconds[1]


# -- streams that break after they began: StreamError, every event first, never retried ---


@pytest.mark.parametrize("burst", [False, True], ids=["paced", "burst"])
def test_cut_mid_stream(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, burst: bool
) -> None:
    faulty_server.script(cut(TOKENS[:5], burst=burst), ok(TOKENS))
    delivered, exc = driver.drain(connect())
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS[:5]
    assert faulty_server.request_count == 1


@pytest.mark.parametrize("burst", [False, True], ids=["paced", "burst"])
def test_end_of_body_without_done_or_finish_reason(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, burst: bool
) -> None:
    faulty_server.script(no_end(TOKENS, burst=burst), ok(TOKENS))
    delivered, exc = driver.drain(connect())
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS
    assert faulty_server.request_count == 1


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (Stream(reply_events(TOKENS, finish=True), "eof"), FULL),
        (Stream(reply_events(TOKENS, finish=False), "done"), TOKENS),
    ],
    ids=["finish-reason-only", "done-only"],
)
def test_either_ending_alone_is_a_proper_end(
    faulty_server: FaultyServer,
    connect: Callable[..., Mistral],
    driver: Driver,
    behaviour: Stream,
    expected: list[str],
) -> None:
    """Only a stream with neither ``[DONE]`` nor a finish reason is truncated."""
    faulty_server.script(behaviour)
    delivered, exc = driver.drain(connect())
    assert exc is None
    assert delivered == expected


BAD_EVENTS = {
    "not-a-chunk": b'data: {"not":"a chunk"}\n\n',
    "broken-json": b'data: {"id": "cmpl-faulty", "choices": [\n\n',
    "api-error": b'data: {"object":"error","message":"Internal error","type":"internal"}\n\n',
}


@pytest.mark.parametrize("burst", [False, True], ids=["paced", "burst"])
@pytest.mark.parametrize("payload", list(BAD_EVENTS.values()), ids=list(BAD_EVENTS))
def test_event_that_does_not_decode(
    faulty_server: FaultyServer,
    connect: Callable[..., Mistral],
    driver: Driver,
    burst: bool,
    payload: bytes,
) -> None:
    """The good events before it are delivered, none after it."""
    faulty_server.script(bad_event(TOKENS[:4], burst=burst, payload=payload), ok(TOKENS))
    delivered, exc = driver.drain(connect())
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS[:4]
    assert faulty_server.request_count == 1


def test_stall_longer_than_timeout(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    faulty_server.script(stall(TOKENS[:3], seconds=10), ok(TOKENS))
    delivered, exc = driver.drain(connect(timeout_ms=500))
    assert isinstance(exc, StreamError)
    assert "stalled" in str(exc)
    assert delivered == TOKENS[:3]
    assert faulty_server.request_count == 1
    assert faulty_server.wait_for_disconnect(5), "the client should close the stalled stream"


def test_timeout_is_per_read_not_total(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    tokens = [f" t{i}" for i in range(40)]
    faulty_server.script(ok(tokens, gap=0.05))  # 2 s in all, in steps far below the timeout
    delivered, exc = driver.drain(connect(timeout_ms=300))
    assert exc is None
    assert delivered == [*tokens, ""]
    assert faulty_server.request_count == 1


# -- failures before the body --------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [headers_then_close(), HangUp()], ids=["headers", "hangup"])
def test_dropped_before_the_body_is_retried_then_request_error(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, behaviour: Any
) -> None:
    faulty_server.script(behaviour)
    delivered, exc = driver.drain(connect(max_retries=2))
    assert isinstance(exc, RequestError)
    assert faulty_server.url in str(exc)
    assert delivered == []
    assert faulty_server.request_count == 3


def test_dropped_before_the_body_then_ok(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    faulty_server.script(headers_then_close(), ok(TOKENS))
    delivered, exc = driver.drain(connect())
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


def test_read_timeout_after_the_request_was_sent_is_not_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, waits: Waits
) -> None:
    """The server took the request and is silent: it may be working on it, and a second
    request would bill twice."""
    faulty_server.script(stall([], seconds=10), ok(TOKENS))
    delivered, exc = driver.drain(connect(timeout_ms=300, max_retries=2))
    assert isinstance(exc, RequestError)
    assert "not retried" in str(exc)
    assert delivered == []
    assert faulty_server.request_count == 1
    assert waits.seconds == []


def test_connection_refused_is_retried_then_names_the_server(driver: Driver, waits: Waits) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = Mistral(server_url=url, max_retries=waits.policy(2))
    delivered, exc = driver.drain(client)
    assert isinstance(exc, RequestError)
    assert not isinstance(exc, httpx.HTTPError)
    assert exc.__cause__ is None and exc.__context__ is None  # no httpx internals chained
    assert str(exc).startswith(f"could not connect to {url} (connection refused)")
    assert "is the server running?" in str(exc)
    assert f"server_url is {url}" in str(exc)
    assert delivered == []
    assert len(waits.seconds) == 2  # three attempts
    with pytest.raises(RequestError):
        driver.complete(client)
    driver.close(client)


def test_connection_error_names_the_environment_setting(
    driver: Driver, waits: Waits, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MISTRAL_SERVER_URL", url)
    client = Mistral(max_retries=waits.policy(0))
    _, exc = driver.drain(client)
    driver.close(client)
    assert isinstance(exc, RequestError)
    assert f"MISTRAL_SERVER_URL is set to {url}" in str(exc)


@pytest.mark.parametrize("url", ["127.0.0.1:8765", "localhost:8765/v1", "ftp://host", "http://"])
@pytest.mark.parametrize("where", ["argument", "environment"])
def test_a_server_url_without_scheme_is_refused_at_once(
    url: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the client touched the network")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", no_network)
    if where == "environment":
        monkeypatch.setenv("MISTRAL_SERVER_URL", url)
    with pytest.raises(ConfigurationError) as info:
        Mistral(server_url=url if where == "argument" else None)
    assert isinstance(info.value, ValueError)
    assert url in str(info.value)
    if "://" not in url:
        assert f"http://{url}" in str(info.value)  # the fix, spelled out
    if where == "environment":
        assert "MISTRAL_SERVER_URL" in str(info.value)


@pytest.mark.parametrize(
    "fault",
    [
        cut(TOKENS[:3]),
        no_end(TOKENS[:3]),
        bad_event(TOKENS[:3]),
        stall(TOKENS[:3], seconds=10),
        unauthorized(),
        headers_then_close(),
    ],
    ids=["cut", "no-end", "bad-event", "stall", "401", "headers-then-close"],
)
def test_the_client_works_again_after_a_fault(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, fault: Any
) -> None:
    """A fault must not poison the connection pool: the next stream on the same client is whole."""
    faulty_server.script(fault, ok(TOKENS))
    client = connect(timeout_ms=400, max_retries=0)
    _, exc = driver.drain(client)
    assert isinstance(exc, MistralError)
    delivered, exc = driver.drain(client)
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


# -- connections: reused, and never ours to close when they are the caller's ---------------


def test_sequential_requests_share_one_connection(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    faulty_server.script(ok(TOKENS))
    client = connect()
    for _ in range(20):
        delivered, exc = driver.drain(client)
        assert exc is None
        assert delivered == FULL
    assert faulty_server.request_count == 20
    assert faulty_server.connections == 1


def test_streams_complete_and_errors_share_one_connection(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    faulty_server.script(ok(TOKENS), completed("Hi"), unauthorized(), rate_limited("0"), ok(TOKENS))
    client = connect()
    assert driver.drain(client) == (FULL, None)
    assert text_of(driver.complete(client).choices[0].message.content) == "Hi"
    assert isinstance(driver.drain(client)[1], APIError)
    assert driver.drain(client) == (FULL, None)  # after a 429 and its retry
    assert faulty_server.request_count == 5
    assert faulty_server.connections == 1


def test_a_client_passed_in_is_used_and_not_closed(
    faulty_server: FaultyServer, driver: Driver
) -> None:
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async def async_hook(request: httpx.Request) -> None:
        hook(request)

    given = driver.httpx_client(
        event_hooks={"request": [hook if driver.mode == "sync" else async_hook]}
    )
    faulty_server.script(ok(TOKENS))
    with Mistral(server_url=faulty_server.url, **given) as client:
        assert driver.drain(client) == (FULL, None)
        driver.close(client)
    (httpx_client,) = given.values()
    assert not httpx_client.is_closed
    assert seen == ["/v1/chat/completions"]
    if driver.mode == "sync":
        httpx_client.close()
    else:
        assert isinstance(driver, AsyncDriver)
        driver.loop.run_until_complete(httpx_client.aclose())


def test_a_mock_transport_receives_the_exact_request(driver: Driver) -> None:
    requests: list[httpx.Request] = []
    body = b"".join(reply_events(TOKENS, finish=True)) + sse("[DONE]")

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        requests.append(request)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    given = driver.httpx_client(transport=httpx.MockTransport(handler))
    client = Mistral(api_key=KEY, server_url="https://llm.example.test/v1", **given)
    messages = [SystemMessage(content="Be brief."), {"role": "user", "content": "Hello"}]
    if driver.mode == "sync":
        with client.chat.stream(model=MODEL, messages=messages, temperature=0.3) as stream:
            deltas = [event.data.choices[0].delta.content for event in stream]
    else:
        assert isinstance(driver, AsyncDriver)

        async def main() -> list[Any]:
            async with client.chat.stream_async(
                model=MODEL, messages=messages, temperature=0.3
            ) as stream:
                return [event.data.choices[0].delta.content async for event in stream]

        deltas = driver.loop.run_until_complete(main())
    assert deltas == FULL
    (request,) = requests
    assert (request.method, request.url.host, request.url.path) == (
        "POST",
        "llm.example.test",
        "/v1/chat/completions",
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-length"] == str(len(request.content))
    assert __import__("json").loads(request.content) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "temperature": 0.3,
        "stream": True,
    }


# -- leaving early ------------------------------------------------------------------------


def test_leaving_the_block_early_disconnects(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    tokens = [f" t{i}" for i in range(100)]  # 5 s of stream
    faulty_server.script(ok(tokens, gap=0.05))
    assert driver.first(connect(), 3) == tokens[:3]
    assert faulty_server.wait_for_disconnect(2), "the server never saw the client go"
    assert faulty_server.request_count == 1


def test_leaving_early_disconnects_from_the_emulator(
    emulator_factory: Callable[..., Emulator], driver: Driver
) -> None:
    emu = emulator_factory(tokens_per_second=40)
    client = Mistral(server_url=emu.url)
    assert len(driver.first(client, 3)) == 3
    assert emu.wait_for_disconnect(5)
    driver.close(client)
    assert emu.request_count == 1


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

    assert 3 <= asyncio.run(main()) < 100
    assert faulty_server.request_count == 1


def test_one_client_across_loops(emulator: Emulator) -> None:
    """A notebook may drive one client from several loops in turn (``asyncio.run`` twice)."""
    client = Mistral(server_url=emulator.url)

    async def once() -> int:
        async with client.chat.stream_async(model=MODEL, messages=MESSAGES) as stream:
            return len([event async for event in stream])

    assert asyncio.run(once()) > 2
    assert asyncio.run(once()) > 2
    client.close()  # the loops are gone: their clients are dropped, not awaited
    assert emulator.request_count == 2


# -- chat.complete and models.list ----------------------------------------------------------


def test_complete_is_retried_too(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    faulty_server.script(unavailable(), headers_then_close(), completed("Hi there"))
    response = driver.complete(connect())
    assert response.choices[0].message.content == "Hi there"
    assert faulty_server.request_count == 3
    assert faulty_server.requests[-1].json["stream"] is False


@pytest.mark.parametrize(
    "body", [b"<html>It works!</html>", b'{"not": "a completion"}'], ids=["html", "json"]
)
def test_a_reply_that_does_not_decode(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver, body: bytes
) -> None:
    """A 200 that is not a completion (a wrong server_url) is a MistralError, not pydantic's."""
    faulty_server.script(Respond(200, body))
    client = connect()
    with pytest.raises(MistralError, match="did not decode as ChatCompletionResponse"):
        driver.complete(client)
    assert faulty_server.request_count == 1
    if body.startswith(b"<"):
        with pytest.raises(MistralError, match="did not decode as ModelList"):
            driver.models(client)


def test_complete_api_error_not_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], driver: Driver
) -> None:
    faulty_server.script(unauthorized(), completed("never"))
    with pytest.raises(APIError) as info:
        driver.complete(connect())
    assert info.value.status_code == 401
    assert faulty_server.request_count == 1


# -- happy paths against the emulator -----------------------------------------------------


@pytest.mark.parametrize("model", ["mistral-small-latest", "magistral-small-latest"])
def test_stream_equals_complete(emulator: Emulator, driver: Driver, model: str) -> None:
    client = Mistral(server_url=emulator.url)
    events: list[Any] = []

    def collect(stream_client: Mistral) -> None:
        nonlocal events
        if driver.mode == "sync":
            with stream_client.chat.stream(model=model, messages=MESSAGES) as stream:
                events = list(stream)
        else:
            assert isinstance(driver, AsyncDriver)

            async def main() -> list[Any]:
                async with stream_client.chat.stream_async(model=model, messages=MESSAGES) as s:
                    return [event async for event in s]

            events = driver.loop.run_until_complete(main())

    collect(client)
    response = driver.complete(client, model=model)
    driver.close(client)
    deltas = [event.data.choices[0].delta for event in events]
    content = response.choices[0].message.content
    assert "".join(d.text for d in deltas) == text_of(content) != ""
    assert "".join(d.thinking for d in deltas) == thinking_of(content)
    assert bool(thinking_of(content)) == model.startswith("magistral")
    assert deltas[0].role == "assistant"
    assert events[-1].data.choices[0].finish_reason == "stop"
    assert events[-1].data.usage is not None
    assert response.choices[0].finish_reason == "stop"


def test_request_shape_with_key(emulator_factory: Callable[..., Emulator], driver: Driver) -> None:
    emu = emulator_factory(api_key=KEY)
    options = {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 64,
        "random_seed": 42,
        "stop": ["\n\n\n"],
        "safe_prompt": False,
        "response_format": {"type": "text"},
    }
    client = Mistral(api_key=KEY, server_url=emu.url)
    delivered, exc = driver.drain(client, tools=None, **options)
    driver.complete(client)
    driver.models(client)
    driver.close(client)
    assert exc is None and delivered
    stream_request, complete_request, models_request = emu.requests
    assert (stream_request.method, stream_request.path) == ("POST", "/v1/chat/completions")
    assert (models_request.method, models_request.path) == ("GET", "/v1/models")
    for request in emu.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
    assert stream_request.headers["accept"] == "text/event-stream"
    assert complete_request.headers["accept"] == "application/json"
    assert stream_request.headers["content-type"].startswith("application/json")
    body = stream_request.json
    assert body["stream"] is True
    assert complete_request.json["stream"] is False
    assert body["model"] == MODEL
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    for name, value in options.items():
        assert body[name] == value
    assert "tools" not in body  # options given as None are left out


def test_no_authorization_header_without_key(
    emulator: Emulator, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    client = Mistral(server_url=emulator.url)
    assert driver.drain(client)[1] is None
    driver.complete(client)
    driver.close(client)
    assert emulator.request_count == 2
    for request in emulator.requests:
        assert "authorization" not in request.headers


def test_server_url_and_key_from_the_environment(
    emulator_factory: Callable[..., Emulator], driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(api_key=KEY)
    monkeypatch.setenv("MISTRAL_SERVER_URL", emu.url)
    monkeypatch.setenv("MISTRAL_API_KEY", KEY + "\n")  # as read from a file: stripped
    client = Mistral()
    assert client.server_url == emu.url
    assert driver.drain(client)[1] is None
    driver.close(client)
    assert emu.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_server_url_ending_in_v1(emulator: Emulator, driver: Driver) -> None:
    client = Mistral(server_url=emulator.url + "/v1/")
    driver.complete(client)
    driver.models(client)
    driver.close(client)
    assert [r.path for r in emulator.requests] == ["/v1/chat/completions", "/v1/models"]


@pytest.mark.parametrize(
    "server_url", [None, "https://api.mistral.ai", "https://api.mistral.ai/v1"]
)
def test_official_server_without_key_fails_before_any_network(
    monkeypatch: pytest.MonkeyPatch, driver: Driver, server_url: str | None
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SERVER_URL", raising=False)

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the client touched the network")

    for transport in (httpx.HTTPTransport, httpx.AsyncHTTPTransport):
        for name in ("handle_request", "handle_async_request"):
            if hasattr(transport, name):
                monkeypatch.setattr(transport, name, no_network)
    client = Mistral(server_url=server_url)
    for call in (driver.drain, driver.complete, driver.models):
        with pytest.raises(NoAPIKeyError) as info:
            result = call(client)
            if isinstance(result, tuple):  # drain returns the error it caught
                raise result[1]  # type: ignore[misc]
        assert "MISTRAL_API_KEY" in str(info.value)
        assert "MISTRAL_SERVER_URL" in str(info.value)
