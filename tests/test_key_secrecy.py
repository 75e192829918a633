"""The API key never appears: checked when set, held as a ``Secret``, and every message we
surface goes through one redaction step first.

Each error path runs with DEBUG logging on for httpx, httpcore and nb_mistral, and then the key
is looked for everywhere a user or a log could see it: the exception's str, repr and args, its
traceback with every frame's locals (as ``pytest --showlocals`` prints them), the whole
``__cause__`` / ``__context__`` chain, every log record, stdout and stderr.
"""

from __future__ import annotations

import logging
import pickle
import secrets
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from client_drivers import Driver, Waits
from faulty_server import (
    FaultyServer,
    HangUp,
    Respond,
    Stream,
    cut,
    dumps,
    error,
    free_port,
    headers_then_close,
    ok,
    reply_events,
    stall,
    unavailable,
)

from nb_mistral import (
    APIError,
    ConfigurationError,
    Mistral,
    MistralError,
    RequestError,
    StreamError,
)
from nb_mistral._redact import REDACTED, redact
from nb_mistral._secret import Secret
from nb_mistral.emulator import Emulator

KEY = "sk-SECRET-" + secrets.token_hex(16)


def exception_texts(exc: BaseException, *, locals_from: int = 1) -> str:
    """Everything an exception can print: str, repr, args, the traceback with its chained
    causes and contexts, also with the locals of every frame from the ``locals_from``-th on
    (the first is the test's own, where the key was typed)."""
    parts = ["".join(traceback.format_exception(exc))]
    tb = exc.__traceback__
    for _ in range(locals_from):
        tb = tb.tb_next if tb is not None else None
    if tb is not None:
        summary = traceback.StackSummary.extract(traceback.walk_tb(tb), capture_locals=True)
        parts += summary.format()
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        pending += [link for link in (current.__cause__, current.__context__) if link]
    return "\n".join(parts)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "nb_mistral", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def assert_nowhere(
    secret: str,
    exc: BaseException | None,
    logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    *,
    locals_from: int = 1,
) -> None:
    if exc is not None:
        assert secret not in exception_texts(exc, locals_from=locals_from)
    assert secret not in logs.text
    for record in logs.records:
        assert secret not in record.getMessage()
        assert secret not in repr(record.args) + repr(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            assert secret not in exception_texts(record.exc_info[1])
    out, err = capfd.readouterr()
    assert secret not in out + err


# -- the key as it is set ------------------------------------------------------------------


@pytest.mark.parametrize("padded", [KEY + "\n", KEY + "\r\n", f"  {KEY}\t", "\n" + KEY])
def test_surrounding_whitespace_is_stripped(
    padded: str, emulator_factory: Callable[..., Emulator], driver: Driver
) -> None:
    """A key read from a file (``open('key.txt').read()``) works as the key it holds."""
    emu = emulator_factory(api_key=KEY)
    client = Mistral(api_key=padded, server_url=emu.url)
    delivered, exc = driver.drain(client)
    driver.close(client)
    assert exc is None and delivered
    assert emu.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (KEY[:12] + "\n" + KEY[12:], "whitespace"),
        (KEY[:12] + "\x07" + KEY[12:], "control"),
        (KEY[:12] + "\x00" + KEY[12:], "control"),
        (KEY[:12] + "\x1b[31m" + KEY[12:], "control"),
        (KEY[:12] + "\x7f" + KEY[12:], "control"),
        (KEY[:12] + " " + KEY[12:], "space"),
        (KEY[:12] + "é" + KEY[12:], "non-ASCII"),
    ],
    ids=["newline", "bell", "nul", "escape", "del", "space", "non-ascii"],
)
def test_a_key_with_a_character_a_header_cannot_carry_is_refused(
    bad: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(ConfigurationError) as info:
        Mistral(api_key=bad, server_url="http://127.0.0.1:9")
    text = exception_texts(info.value)
    assert kind in str(info.value)
    assert "position 13" in str(info.value)
    for piece in (KEY, KEY[:12], KEY[12:], bad):
        assert piece not in text
    if "\x00" in bad:
        return  # an environment variable cannot hold a NUL
    monkeypatch.setenv("MISTRAL_API_KEY", bad)
    with pytest.raises(ConfigurationError) as info:
        Mistral(server_url="http://127.0.0.1:9")
    assert KEY[12:] not in exception_texts(info.value)


def test_the_secret_never_shows() -> None:
    secret = Secret(KEY + "\n")
    assert secret.reveal() == KEY
    for text in (str(secret), repr(secret), f"{secret}", repr([secret])):
        assert KEY not in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert Secret(KEY) == secret and hash(Secret(KEY)) == hash(secret)
    assert Secret.of("  ") is None and Secret.of(None) is None
    client = Mistral(api_key=KEY, server_url="http://127.0.0.1:9")
    for text in (str(client), repr(client), repr(vars(client)), repr(client.chat)):
        assert KEY not in text
    assert client.has_api_key


# -- one redaction step --------------------------------------------------------------------


def test_redact_removes_known_keys_and_bearer_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Secret(KEY)
    other = "sk-OTHER-" + secrets.token_hex(8)
    monkeypatch.setenv("MISTRAL_API_KEY", other + "\n")
    cases = {
        f"LocalProtocolError: Illegal header value b'Bearer {KEY}\\n'": KEY,
        "Illegal header value b'Bearer not-a-known-key-123\\n'": "not-a-known-key-123",
        f'{{"message": "Invalid key: {KEY}"}}': KEY,
        f"authorization: bearer {other}": other,
        f"key={other}&x=1": other,
        f"Bearer%20{KEY}": KEY,
    }
    for text, hidden in cases.items():
        clean = redact(text)
        assert hidden not in clean
        assert REDACTED in clean
    assert redact("a plain message, 401 Unauthorized") == "a plain message, 401 Unauthorized"
    del secret


# -- every error path, DEBUG logging on ----------------------------------------------------


ECHO = {"message": f"Invalid key: Bearer {KEY}", "key": KEY, "detail": f"got {KEY!r}"}

FAULTS = {
    "401-echoing-the-key": (error(401, ECHO), APIError),
    "503-echoing-the-key": (error(503, ECHO, [("retry-after", "0")]), APIError),
    "cut": (cut(["Hello"]), StreamError),
    "stall": (stall(["Hello"], seconds=10), StreamError),
    "event-echoing-the-key": (
        Stream((*reply_events(["Hi"], finish=False), b"data: " + dumps(ECHO) + b"\n\n")),
        StreamError,
    ),
    "broken-json-echoing-the-key": (
        Stream((*reply_events(["Hi"], finish=False), f"data: {{{KEY}\n\n".encode())),
        StreamError,
    ),
    "headers-then-close": (headers_then_close(), RequestError),
    "hangup": (HangUp(), RequestError),
    "silent": (stall([], seconds=10), RequestError),
}


@pytest.mark.parametrize(("behaviour", "kind"), list(FAULTS.values()), ids=list(FAULTS))
def test_key_nowhere_on_any_stream_error(
    faulty_server: FaultyServer,
    driver: Driver,
    waits: Waits,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    behaviour: Any,
    kind: type[MistralError],
) -> None:
    faulty_server.script(behaviour)
    client = Mistral(
        api_key=KEY + "\n",
        server_url=faulty_server.url,
        timeout_ms=400,
        max_retries=waits.policy(1),
    )
    _, exc = driver.drain(client)
    driver.close(client)
    assert isinstance(exc, kind)
    assert faulty_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    if isinstance(exc, APIError):
        assert exc.message.startswith("Invalid key: Bearer [redacted]")
        assert KEY not in exc.body and "Invalid key" in exc.body
    assert "send_request_headers" in debug_logs.text  # httpcore's DEBUG lines were captured
    # A stream that echoes the key holds it in the bytes it read, which the reading frames keep
    # as locals: those are server text, not a message; everything else is checked.
    echoed_in_stream = isinstance(behaviour, Stream) and KEY.encode() in b"".join(behaviour.events)
    assert_nowhere(KEY, exc, debug_logs, capfd, locals_from=99 if echoed_in_stream else 1)


@pytest.mark.parametrize(
    "behaviour",
    [error(401, ECHO), unavailable(), Respond(200, dumps(ECHO)), ok(["Hi"])],
    ids=["401", "503", "undecodable", "ok"],
)
def test_key_nowhere_on_complete_and_models(
    faulty_server: FaultyServer,
    driver: Driver,
    waits: Waits,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    behaviour: Any,
) -> None:
    faulty_server.script(behaviour)
    client = Mistral(api_key=KEY, server_url=faulty_server.url, max_retries=waits.policy(0))
    for call in (driver.complete, driver.models):
        try:
            call(client)
        except MistralError as exc:
            assert_nowhere(KEY, exc, debug_logs, capfd)
        else:  # a 200 whose body any model list fits
            assert call == driver.models and behaviour.status == 200
    driver.close(client)
    assert_nowhere(KEY, None, debug_logs, capfd)


def test_key_nowhere_on_connection_refused(
    driver: Driver,
    waits: Waits,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    client = Mistral(
        api_key=KEY, server_url=f"http://127.0.0.1:{free_port()}", max_retries=waits.policy(1)
    )
    _, exc = driver.drain(client)
    driver.close(client)
    assert isinstance(exc, RequestError)
    assert_nowhere(KEY, exc, debug_logs, capfd)


def test_key_nowhere_when_h11_refuses_a_header_of_the_callers_client(
    faulty_server: FaultyServer,
    driver: Driver,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A key with a newline that reaches h11 by another way (a header of the caller's own
    httpx client): h11's ``Illegal header value b'Bearer ...'`` is redacted in our error and
    in httpcore's DEBUG log of it."""
    given = driver.httpx_client(headers={"Authorization": f"Bearer {KEY}\n"})
    client = Mistral(server_url=faulty_server.url, max_retries=0, **given)
    _, exc = driver.drain(client)
    assert isinstance(exc, RequestError)
    assert "Illegal header value" in str(exc)
    assert "LocalProtocolError" in debug_logs.text
    assert faulty_server.request_count == 0
    assert_nowhere(KEY, exc, debug_logs, capfd)
    (httpx_client,) = given.values()
    if isinstance(httpx_client, httpx.Client):
        httpx_client.close()


def test_key_nowhere_on_a_good_stream(
    emulator_factory: Callable[..., Emulator],
    driver: Driver,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(api_key=KEY)
    client = Mistral(api_key=KEY + "\n", server_url=emu.url)
    delivered, exc = driver.drain(client)
    driver.complete(client)
    driver.models(client)
    driver.close(client)
    assert exc is None and delivered
    assert "HTTP Request: POST" in debug_logs.text
    assert_nowhere(KEY, None, debug_logs, capfd)


# -- the magics' trait ---------------------------------------------------------------------


@pytest.fixture
def magics(monkeypatch: pytest.MonkeyPatch) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    from nb_mistral._magics import MistralMagics

    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SERVER_URL", raising=False)
    return MistralMagics(shell=InteractiveShell.instance())


def test_the_trait_holds_a_secret(magics: Any, capsys: pytest.CaptureFixture[str]) -> None:
    magics.api_key = KEY + "\n"
    assert isinstance(magics.api_key, Secret)
    assert magics.api_key.reveal() == KEY
    for text in (repr(vars(magics)), repr(magics._trait_values), str(magics.api_key)):
        assert KEY not in text
    magics.mistral("config")
    magics.shell.run_line_magic("config", "MistralMagics")
    out = capsys.readouterr().out
    assert "API key: set (MistralMagics.api_key)" in out
    assert KEY not in out


def test_the_trait_refuses_a_control_character(magics: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        magics.api_key = KEY[:8] + "\x07" + KEY[8:]
    # traitlets' own frames hold the value they were given: no locals here
    assert KEY[8:] not in exception_texts(info.value, locals_from=99)
    assert magics.api_key is None


def test_a_key_set_with_percent_config_is_held_by_no_config(
    magics: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """``%config`` merges what it was given into every configurable's config, the shell's
    included: the key must be a ``Secret`` there too."""
    shell = magics.shell
    shell.register_magics(magics)
    shell.configurables.append(magics)
    try:
        shell.run_line_magic("config", f"MistralMagics.api_key = {KEY + chr(10)!r}")
        assert isinstance(magics.api_key, Secret) and magics.api_key.reveal() == KEY
        for holder in (magics, shell, *shell.configurables):
            assert KEY not in repr(vars(holder))
            assert KEY not in repr(getattr(holder, "config", ""))
        shell.run_line_magic("config", f"MistralMagics.api_key = {KEY[:8] + chr(7) + KEY[8:]!r}")
        assert "control character" in caplog.text  # %config logs what a configurable refused
        assert KEY[8:] not in caplog.text
        assert magics.api_key.reveal() == KEY  # the refused key changed nothing
    finally:
        shell.configurables.remove(magics)
