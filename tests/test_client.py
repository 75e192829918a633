"""The sync client (``Mistral.chat.stream`` / ``complete``) against faults and the emulator.

Each fault case pins down three things a user relies on: the exception class (always a
``MistralError``, never a bare httpx one), exactly which deltas were delivered before it
(nothing that arrived is lost, nothing is duplicated), and how many requests the server saw
(retried before the body, never after streaming began). The happy paths and the request's
shape run against the emulator; the key must never show anywhere.
"""

from __future__ import annotations

import email.utils
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
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
    stall,
    unauthorized,
    unavailable,
    unprocessable,
)

from nb_mistral import APIError, Mistral, MistralError, RequestError, StreamError, UserMessage
from nb_mistral._models import SystemMessage, text_of, thinking_of
from nb_mistral.emulator import Emulator

MODEL = "mistral-small-latest"
MESSAGES = [UserMessage(content="Say hello")]
TOKENS = ["Hello", ",", " world", "!", " How", " are", " you", "?"]
FULL = [*TOKENS, ""]  # what a good stream delivers: the deltas, then the final empty one
KEY = "sk-SECRET-" + secrets.token_hex(16)


def drain(client: Mistral, **options: Any) -> tuple[list[Any], MistralError | None]:
    """Stream a reply; return the delta contents delivered and the error that ended it.

    Only ``MistralError`` is caught: any other exception (an httpx one) fails the test.
    """
    delivered: list[Any] = []
    try:
        with client.chat.stream(model=MODEL, messages=MESSAGES, **options) as stream:
            for event in stream:
                delivered.append(event.data.choices[0].delta.content)
    except MistralError as exc:
        return delivered, exc
    return delivered, None


@pytest.fixture
def connect(faulty_server: FaultyServer) -> Iterator[Callable[..., Mistral]]:
    """Clients pointed at the faulty server (closed after the test)."""
    clients: list[Mistral] = []

    def make(**kwargs: Any) -> Mistral:
        client = Mistral(server_url=faulty_server.url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


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
    faulty_server: FaultyServer, connect: Callable[..., Mistral], behaviour: Any, request_id: str
) -> None:
    faulty_server.script(behaviour, ok(TOKENS))
    delivered, exc = drain(connect())
    assert isinstance(exc, APIError)
    assert (exc.status_code, exc.message, exc.request_id) == (401, "Unauthorized", request_id)
    assert "Unauthorized" in exc.body
    assert delivered == []
    assert faulty_server.request_count == 1


def test_422_is_readable_and_not_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(unprocessable("temperature"), ok(TOKENS))
    delivered, exc = drain(connect(), temperature=0.3)
    assert isinstance(exc, APIError)
    assert exc.status_code == 422
    assert "temperature" in exc.message
    assert "less than or equal" in exc.message
    assert "temperature" in str(exc)
    assert delivered == []
    assert faulty_server.request_count == 1


def test_429_honours_retry_after_then_completes(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(rate_limited("1"), ok(TOKENS))
    start = time.monotonic()
    delivered, exc = drain(connect())
    elapsed = time.monotonic() - start
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2
    assert elapsed >= 0.9, f"the retry came after {elapsed:.2f}s, before Retry-After: 1"


def test_retry_after_as_an_http_date(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1 to 2 s from now
    faulty_server.script(rate_limited(when), ok(TOKENS))
    start = time.monotonic()
    delivered, exc = drain(connect())
    assert exc is None
    assert delivered == FULL
    assert time.monotonic() - start >= 0.9


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retried_statuses(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], status: int
) -> None:
    faulty_server.script(
        error(status, {"message": "try again"}, [("retry-after", "0")]), ok(TOKENS)
    )
    delivered, exc = drain(connect())
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


@pytest.mark.parametrize("status", [400, 403, 404, 405, 409])
def test_other_4xx_not_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], status: int
) -> None:
    faulty_server.script(error(status, {"detail": "nope"}, [("retry-after", "0")]), ok(TOKENS))
    delivered, exc = drain(connect())
    assert isinstance(exc, APIError)
    assert (exc.status_code, exc.message) == (status, "nope")
    assert delivered == []
    assert faulty_server.request_count == 1


def test_503_then_ok_is_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(unavailable(), ok(TOKENS))
    delivered, exc = drain(connect())
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


@pytest.mark.parametrize(("max_retries", "attempts"), [(2, 3), (0, 1)])
def test_503_until_retries_run_out(
    faulty_server: FaultyServer,
    connect: Callable[..., Mistral],
    max_retries: int,
    attempts: int,
) -> None:
    faulty_server.script(unavailable())
    start = time.monotonic()
    delivered, exc = drain(connect(max_retries=max_retries))
    elapsed = time.monotonic() - start
    assert isinstance(exc, APIError)
    assert exc.status_code == 503
    assert exc.message == "Service unavailable"
    assert delivered == []
    assert faulty_server.request_count == attempts
    if max_retries:
        assert elapsed > 0.3, "retries should back off, not hammer the server"


# -- streams that break after they began: StreamError, every event first, never retried ---


@pytest.mark.parametrize("burst", [False, True], ids=["paced", "burst"])
def test_cut_mid_stream(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], burst: bool
) -> None:
    faulty_server.script(cut(TOKENS[:5], burst=burst), ok(TOKENS))
    delivered, exc = drain(connect())
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS[:5]
    assert faulty_server.request_count == 1


@pytest.mark.parametrize("burst", [False, True], ids=["paced", "burst"])
def test_end_of_body_without_done_or_finish_reason(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], burst: bool
) -> None:
    faulty_server.script(no_end(TOKENS, burst=burst), ok(TOKENS))
    delivered, exc = drain(connect())
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
    behaviour: Stream,
    expected: list[str],
) -> None:
    """Only a stream with neither ``[DONE]`` nor a finish reason is truncated."""
    faulty_server.script(behaviour)
    delivered, exc = drain(connect())
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
    faulty_server: FaultyServer, connect: Callable[..., Mistral], burst: bool, payload: bytes
) -> None:
    """The good events before it are delivered, none after it."""
    faulty_server.script(bad_event(TOKENS[:4], burst=burst, payload=payload), ok(TOKENS))
    delivered, exc = drain(connect())
    assert isinstance(exc, StreamError)
    assert delivered == TOKENS[:4]
    assert faulty_server.request_count == 1


def test_stall_longer_than_timeout(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(stall(TOKENS[:3], seconds=10), ok(TOKENS))
    start = time.monotonic()
    delivered, exc = drain(connect(timeout_ms=500))
    elapsed = time.monotonic() - start
    assert isinstance(exc, StreamError)
    assert not isinstance(exc, httpx.HTTPError)
    assert delivered == TOKENS[:3]
    assert 0.4 < elapsed < 0.5 + 3.0, f"gave up after {elapsed:.2f}s with timeout_ms=500"
    assert faulty_server.request_count == 1
    assert faulty_server.wait_for_disconnect(5), "the client should close the stalled stream"


def test_timeout_is_per_read_not_total(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    tokens = [f" t{i}" for i in range(40)]
    faulty_server.script(ok(tokens, gap=0.05))
    start = time.monotonic()
    delivered, exc = drain(connect(timeout_ms=300))
    elapsed = time.monotonic() - start
    assert exc is None
    assert delivered == [*tokens, ""]
    assert elapsed > 1.5  # far longer than the timeout, in steady steps
    assert faulty_server.request_count == 1


# -- failures before the body: retried, then RequestError ---------------------------------


@pytest.mark.parametrize("behaviour", [headers_then_close(), HangUp()], ids=["headers", "hangup"])
def test_close_before_body_is_retried_then_request_error(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], behaviour: Any
) -> None:
    faulty_server.script(behaviour)
    delivered, exc = drain(connect(max_retries=2))
    assert isinstance(exc, RequestError)
    assert delivered == []
    assert faulty_server.request_count == 3


def test_close_before_body_then_ok(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(headers_then_close(), ok(TOKENS))
    delivered, exc = drain(connect())
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


def test_timeout_before_first_body_byte_is_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(stall([], seconds=10))
    delivered, exc = drain(connect(timeout_ms=300, max_retries=1))
    assert isinstance(exc, RequestError)
    assert delivered == []
    assert faulty_server.request_count == 2


def test_connection_refused_is_retried_then_request_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts = 0
    original = httpx.HTTPTransport.handle_request

    def counting(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return original(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", counting)
    with Mistral(server_url=f"http://127.0.0.1:{free_port()}", max_retries=2) as client:
        delivered, exc = drain(client)
        assert isinstance(exc, RequestError)
        assert isinstance(exc, MistralError)
        assert not isinstance(exc, httpx.HTTPError)
        assert delivered == []
        assert attempts == 3
        with pytest.raises(RequestError):
            client.chat.complete(model=MODEL, messages=MESSAGES)


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
    faulty_server: FaultyServer, connect: Callable[..., Mistral], fault: Any
) -> None:
    """A fault must not poison the connection pool: the next stream on the same client is whole."""
    faulty_server.script(fault, ok(TOKENS))
    client = connect(timeout_ms=400, max_retries=0)
    _, exc = drain(client)
    assert isinstance(exc, MistralError)
    delivered, exc = drain(client)
    assert exc is None
    assert delivered == FULL
    assert faulty_server.request_count == 2


# -- leaving early ------------------------------------------------------------------------


def test_leaving_the_block_early_disconnects(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    tokens = [f" t{i}" for i in range(100)]  # 5 s of stream
    faulty_server.script(ok(tokens, gap=0.05))
    delivered = []
    start = time.monotonic()
    with connect().chat.stream(model=MODEL, messages=MESSAGES) as stream:
        for event in stream:
            delivered.append(event.data.choices[0].delta.content)
            if len(delivered) == 3:
                break
    assert delivered == tokens[:3]
    assert faulty_server.wait_for_disconnect(5), "the server never saw the client go"
    assert faulty_server.disconnect_times[0] - start < 3.0  # long before the stream's end
    time.sleep(0.2)
    assert faulty_server.request_count == 1


def test_leaving_early_disconnects_from_the_emulator(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(tokens_per_second=40)
    with Mistral(server_url=emu.url) as client:
        with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
            for n, _ in enumerate(stream, 1):
                if n == 3:
                    break
        assert emu.wait_for_disconnect(5)
        assert emu.request_count == 1


# -- chat.complete ------------------------------------------------------------------------


def test_complete_is_retried_too(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(unavailable(), headers_then_close(), completed("Hi there"))
    response = connect().chat.complete(model=MODEL, messages=MESSAGES)
    assert response.choices[0].message.content == "Hi there"
    assert faulty_server.request_count == 3
    assert faulty_server.requests[-1].json["stream"] is False


@pytest.mark.parametrize(
    "body", [b"<html>It works!</html>", b'{"not": "a completion"}'], ids=["html", "json"]
)
def test_complete_reply_that_does_not_decode(
    faulty_server: FaultyServer, connect: Callable[..., Mistral], body: bytes
) -> None:
    """A 200 that is not a completion (a wrong server_url) is a MistralError, not pydantic's."""
    faulty_server.script(Respond(200, body))
    client = connect()
    with pytest.raises(MistralError):
        client.chat.complete(model=MODEL, messages=MESSAGES)
    assert faulty_server.request_count == 1
    if body.startswith(b"<"):
        with pytest.raises(MistralError):
            client.models.list()


def test_complete_api_error_not_retried(
    faulty_server: FaultyServer, connect: Callable[..., Mistral]
) -> None:
    faulty_server.script(unauthorized(), completed("never"))
    with pytest.raises(APIError) as info:
        connect().chat.complete(model=MODEL, messages=MESSAGES)
    assert info.value.status_code == 401
    assert faulty_server.request_count == 1


# -- happy paths against the emulator -----------------------------------------------------


def test_stream_text_equals_complete_text(emulator: Emulator) -> None:
    with Mistral(server_url=emulator.url) as client:
        with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
            events = list(stream)
        response = client.chat.complete(model=MODEL, messages=MESSAGES)
    streamed = "".join(e.data.choices[0].delta.text for e in events)
    assert streamed
    assert streamed == text_of(response.choices[0].message.content)
    assert events[0].data.choices[0].delta.role == "assistant"
    assert events[-1].data.choices[0].finish_reason == "stop"
    assert events[-1].data.usage is not None
    assert response.choices[0].finish_reason == "stop"


def test_thinking_chunks_for_a_reasoning_model(emulator: Emulator) -> None:
    model = "magistral-small-latest"
    with Mistral(server_url=emulator.url) as client:
        with client.chat.stream(model=model, messages=MESSAGES) as stream:
            deltas = [e.data.choices[0].delta for e in stream]
        response = client.chat.complete(model=model, messages=MESSAGES)
    thinking = "".join(d.thinking for d in deltas)
    text = "".join(d.text for d in deltas)
    assert thinking and text
    assert thinking not in text
    content = response.choices[0].message.content
    assert thinking_of(content) == thinking
    assert text_of(content) == text


def test_request_shape_with_key(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(api_key=KEY)
    messages: list[Any] = [
        SystemMessage(content="Be brief."),
        UserMessage(content="Hello"),
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "And again"},
    ]
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
    with client.chat.stream(model=MODEL, messages=messages, tools=None, **options) as stream:
        assert list(stream)
    client.close()
    (request,) = emu.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["content-type"].startswith("application/json")
    body = request.json
    assert body["stream"] is True
    assert body["model"] == MODEL
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "And again"},
    ]
    for name, value in options.items():
        assert body[name] == value
    assert "tools" not in body  # options given as None are left out


def test_no_authorization_header_without_key(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with Mistral(server_url=emulator.url) as client:
        with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
            assert list(stream)
        client.chat.complete(model=MODEL, messages=MESSAGES)
    assert emulator.request_count == 2
    for request in emulator.requests:
        assert "authorization" not in request.headers
    assert emulator.requests[1].headers["accept"] == "application/json"


def test_server_url_and_key_from_the_environment(
    emulator_factory: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator_factory(api_key=KEY)
    monkeypatch.setenv("MISTRAL_SERVER_URL", emu.url)
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    with Mistral() as client:
        assert client.server_url == emu.url
        with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
            assert list(stream)
    assert emu.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_server_url_ending_in_v1(emulator: Emulator) -> None:
    with Mistral(server_url=emulator.url + "/v1/") as client:
        client.chat.complete(model=MODEL, messages=MESSAGES)
    assert emulator.requests[0].path == "/v1/chat/completions"


@pytest.mark.parametrize(
    "server_url", [None, "https://api.mistral.ai", "https://api.mistral.ai/v1"]
)
def test_official_server_without_key_fails_before_any_network(
    monkeypatch: pytest.MonkeyPatch, server_url: str | None
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SERVER_URL", raising=False)

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the client touched the network")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", no_network)
    monkeypatch.setattr(httpx.Client, "send", no_network)
    client = Mistral(server_url=server_url)
    for call in (client.chat.stream, client.chat.complete):
        with pytest.raises(MistralError) as info:
            call(model=MODEL, messages=MESSAGES)
        assert "MISTRAL_API_KEY" in str(info.value)
        assert "MISTRAL_SERVER_URL" in str(info.value)


# -- the key never shows ------------------------------------------------------------------


def exception_texts(exc: BaseException) -> str:
    """Everything an exception can print: str, repr, the traceback with its chained causes
    (also with every frame's locals, as ``pytest --showlocals`` shows them)."""
    parts = ["".join(traceback.format_exception(exc))]
    parts += traceback.TracebackException.from_exception(exc, capture_locals=True).format()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), str(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def test_key_not_in_client_repr() -> None:
    client = Mistral(api_key=KEY, server_url="http://127.0.0.1:9")
    for text in (str(client), repr(client), repr(client.chat), repr(vars(client))):
        assert KEY not in text
    assert client.has_api_key


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        (unauthorized(), APIError),
        (cut(TOKENS[:2]), StreamError),
        (stall(TOKENS[:2], seconds=10), StreamError),
        (bad_event(TOKENS[:2]), StreamError),
        (headers_then_close(), RequestError),
    ],
    ids=["401", "cut", "stall", "bad-event", "headers-then-close"],
)
def test_key_not_in_exceptions(
    faulty_server: FaultyServer,
    connect: Callable[..., Mistral],
    behaviour: Any,
    kind: type[MistralError],
) -> None:
    faulty_server.script(behaviour)
    client = connect(api_key=KEY, timeout_ms=400, max_retries=0)
    _, exc = drain(client)
    assert isinstance(exc, kind)
    assert faulty_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in exception_texts(exc)


def test_key_not_in_connection_errors() -> None:
    with Mistral(api_key=KEY, server_url=f"http://127.0.0.1:{free_port()}", max_retries=0) as c:
        _, exc = drain(c)
    assert isinstance(exc, RequestError)
    assert KEY not in exception_texts(exc)


def test_key_not_in_wrong_key_error(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(api_key="the-right-key")
    with Mistral(api_key=KEY, server_url=emu.url) as client:
        _, exc = drain(client)
    assert isinstance(exc, APIError)
    assert exc.status_code == 401
    assert KEY not in exception_texts(exc)


def test_key_not_logged(
    emulator_factory: Callable[..., Emulator],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(api_key=KEY)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "nb_mistral", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    with Mistral(api_key=KEY, server_url=emu.url) as client:
        with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
            assert list(stream)
        client.chat.complete(model=MODEL, messages=MESSAGES)
        client.models.list()
    assert "send_request_headers" in caplog.text  # httpcore's DEBUG lines were captured
    assert "HTTP Request: POST" in caplog.text  # and httpx's INFO lines
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in repr(record.args)
    out, err = capfd.readouterr()
    assert KEY not in out + err
