"""``Mistral(store=..., cache=...)``: the client itself records and replays (emulator)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from nb_mistral import CacheMiss, CompletionEvent, Mistral, MistralError
from nb_mistral.emulator import Emulator
from nb_mistral.store import REPLAY_HEADER, Record, RecordStatus, open_store
from nb_mistral.store.__main__ import main as store_main

PROMPT = [{"role": "user", "content": "Tell me how a replayed stream keeps its events"}]


def wait_for_complete(path: Path, count: int, timeout: float = 10.0) -> list[Record]:
    """A stream read to its end by a bare client is recorded within about a second."""
    store = open_store(path)
    deadline = time.monotonic() + timeout
    while True:
        store.flush()
        done = [r for r in store.history(limit=None) if r.status is RecordStatus.COMPLETE]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.05)


def test_a_plain_client_has_no_store(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    assert client._store_settings is None
    with client.chat.stream(model="mistral-small-latest", messages=PROMPT) as stream:
        assert REPLAY_HEADER not in stream.response.headers
        assert list(stream)
    client.close()


def test_record_then_replay_sync(tmp_path: Path, emulator: Emulator) -> None:
    path = tmp_path / "replies.sqlite3"
    client = Mistral(server_url=emulator.url, store=path, cache="replay")
    with client.chat.stream(model="mistral-small-latest", messages=PROMPT) as stream:
        live = list(stream)
        assert REPLAY_HEADER not in stream.response.headers
    assert emulator.request_count == 1
    (record,) = wait_for_complete(path, 1)

    with client.chat.stream(model="mistral-small-latest", messages=PROMPT) as stream:
        replayed = list(stream)
        assert stream.response.headers[REPLAY_HEADER] == record.id
    assert replayed == live and len(live) > 5
    assert all(isinstance(event, CompletionEvent) for event in replayed)
    assert emulator.request_count == 1  # the replay sent nothing
    client.close()


def test_record_then_replay_async(tmp_path: Path, emulator: Emulator) -> None:
    path = tmp_path / "replies.sqlite3"
    client = Mistral(server_url=emulator.url, store=path, cache="replay")

    async def read() -> tuple[list[CompletionEvent], str | None]:
        async with client.chat.stream_async(model="mistral-small-latest", messages=PROMPT) as s:
            return [event async for event in s], s.response.headers.get(REPLAY_HEADER)

    live, live_header = asyncio.run(read())
    (record,) = wait_for_complete(path, 1)
    replayed, header = asyncio.run(read())
    assert (live_header, header) == (None, record.id)
    assert replayed == live and emulator.request_count == 1
    client.close()


def test_a_different_request_is_a_miss(tmp_path: Path, emulator: Emulator) -> None:
    path = tmp_path / "replies.sqlite3"
    client = Mistral(server_url=emulator.url, store=path, cache="replay")
    for temperature in (0.1, 0.2):
        with client.chat.stream(
            model="mistral-small-latest", messages=PROMPT, temperature=temperature
        ) as stream:
            list(stream)
    assert emulator.request_count == 2
    client.close()


def test_only_mode_miss_sends_nothing(tmp_path: Path, emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url, store=tmp_path / "replies.sqlite3", cache="only")
    prompt = [{"role": "user", "content": "Summarise the quarterly figures for the board"}]
    with pytest.raises(CacheMiss) as caught:
        client.chat.stream(model="mistral-tiny-x", messages=prompt)

    async def ask() -> None:
        async with client.chat.stream_async(model="mistral-tiny-x", messages=prompt):
            pass

    with pytest.raises(CacheMiss):
        asyncio.run(ask())
    assert isinstance(caught.value, MistralError)
    assert "mistral-tiny-x" in str(caught.value)
    assert "Summarise the quarterly figures" in str(caught.value)
    assert emulator.request_count == 0
    client.close()


def test_an_error_before_streaming_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "replies.sqlite3"
    client = Mistral(server_url="http://127.0.0.1:9", store=path, max_retries=0)
    with pytest.raises(MistralError):
        client.chat.stream(model="mistral-small-latest", messages=PROMPT)
    store = open_store(path)
    store.flush()
    (record,) = store.history()
    assert record.status is RecordStatus.ERROR and record.error_type == "RequestError"


def test_the_api_key_never_reaches_the_file(tmp_path: Path, emulator: Emulator) -> None:
    key = "sk-" + secrets.token_hex(20)
    path = tmp_path / "replies.sqlite3"
    client = Mistral(api_key=key, server_url=emulator.url, store=path, cache="replay")
    for _ in range(2):
        with client.chat.stream(model="mistral-small-latest", messages=PROMPT) as stream:
            list(stream)
        wait_for_complete(path, 1)
    assert emulator.request_count == 1
    assert emulator.requests[0].headers.get("authorization") == f"Bearer {key}"
    files = [p for p in tmp_path.iterdir() if p.name.startswith("replies.sqlite3")]
    assert any(p.name.endswith("-wal") for p in files)
    for file in files:
        assert key.encode() not in file.read_bytes(), file.name
    assert key not in repr(open_store(path).history())
    exported = tmp_path / "replies.jsonl"
    assert store_main(["export", str(exported), "--store", str(path)]) == 0
    assert exported.stat().st_size > 0 and key not in exported.read_text()
    client.close()


def test_complete_records_and_replays_and_shares_the_key_with_stream(
    tmp_path: Path, emulator: Emulator
) -> None:
    path = tmp_path / "replies.sqlite3"
    client = Mistral(server_url=emulator.url, store=path, cache="replay")
    first = client.chat.complete(model="mistral-small-latest", messages=PROMPT)
    wait_for_complete(path, 1)
    again = client.chat.complete(model="mistral-small-latest", messages=PROMPT)
    assert emulator.request_count == 1
    assert again.choices[0].message.content == first.choices[0].message.content != ""
    assert (again.id, again.model, again.usage) == (first.id, first.model, first.usage)
    assert again.choices[0].finish_reason == first.choices[0].finish_reason
    with client.chat.stream(model="mistral-small-latest", messages=PROMPT) as stream:
        streamed = "".join(event.data.choices[0].delta.text for event in stream)
    assert streamed == first.choices[0].message.content
    assert emulator.request_count == 1

    other = [{"role": "user", "content": "Streamed first, completed later"}]
    with client.chat.stream(model="mistral-small-latest", messages=other) as stream:
        text = "".join(event.data.choices[0].delta.text for event in stream if event.data.choices)
    wait_for_complete(path, 2)

    async def complete_async() -> str:
        answer = await client.chat.complete_async(model="mistral-small-latest", messages=other)
        return str(answer.choices[0].message.content)

    assert asyncio.run(complete_async()) == text
    assert emulator.request_count == 2
    client.close()
