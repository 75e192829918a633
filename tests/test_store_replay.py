"""Record then replay: through the same EventStream path, identical events and text."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from store_support import chat_body, key_of, new_store, record_live, record_live_async, text_of

from nb_mistral import CompletionEvent, EventStream, EventStreamAsync, MistralError
from nb_mistral._reply import Reply
from nb_mistral.emulator import Emulator
from nb_mistral.store import (
    CacheMiss,
    CacheMode,
    NullStore,
    Record,
    RecordStatus,
    Store,
    replay_response,
    replay_response_async,
)


def test_record_then_replay_sync(tmp_path: Path, emulator: Emulator) -> None:
    store = new_store(tmp_path / "replies.sqlite3")
    body = chat_body("Tell me about replaying a streamed reply")
    live, recorder = record_live(store, emulator.url, body)
    assert emulator.request_count == 1

    record = store.find_replay(CacheMode.REPLAY, key_of(emulator.url, body), body)
    assert record is not None and record.id == recorder.id
    assert record.status is RecordStatus.COMPLETE
    with EventStream(replay_response(record), CompletionEvent) as stream:
        replayed = list(stream)

    assert replayed == live
    assert record.text == text_of(live) != ""
    assert record.finish_reason == "stop"
    assert record.usage is not None and record.usage["completion_tokens"] > 0
    reply = record.reply()
    assert (reply.text, reply.finish_reason, reply.error) == (record.text, "stop", None)
    live_reply = Reply(body["model"], body["messages"])
    for event in live:
        live_reply.add(event)
    for name in ("text", "thinking", "finish_reason", "model", "id", "deltas", "messages"):
        assert getattr(reply, name) == getattr(live_reply, name), name
    assert reply.usage == live_reply.usage.model_dump(mode="json", exclude_none=True)
    assert emulator.request_count == 1  # the replay asked nobody
    store.close()


def test_record_then_replay_async(tmp_path: Path, emulator: Emulator) -> None:
    store = new_store(tmp_path / "replies.sqlite3")
    body = chat_body("Async streams replay too")

    async def scenario() -> tuple[list[CompletionEvent], list[CompletionEvent]]:
        live, _ = await record_live_async(store, emulator.url, body)
        record = store.lookup(key_of(emulator.url, body))
        assert record is not None
        async with EventStreamAsync(replay_response_async(record), CompletionEvent) as stream:
            replayed = [event async for event in stream]
        return live, replayed

    live, replayed = asyncio.run(scenario())
    assert replayed == live and len(live) > 10
    assert emulator.request_count == 1
    store.close()


def test_only_mode_miss_raises_cache_miss_and_sends_nothing(
    tmp_path: Path, emulator: Emulator
) -> None:
    store = new_store(tmp_path / "replies.sqlite3")
    body = chat_body("Summarise the quarterly figures for the board please", model="mistral-x")
    with pytest.raises(CacheMiss) as caught:
        store.find_replay(CacheMode.ONLY, key_of(emulator.url, body), body)
    assert isinstance(caught.value, MistralError)
    message = str(caught.value)
    assert "mistral-x" in message and "Summarise the quarterly figures" in message
    assert store.find_replay("replay", key_of(emulator.url, body), body) is None
    assert store.find_replay("off", key_of(emulator.url, body), body) is None
    with pytest.raises(CacheMiss):
        NullStore().find_replay("only", "k", body)
    assert emulator.request_count == 0
    store.close()


def test_refresh_supersedes_and_only_complete_records_replay(
    tmp_path: Path, emulator: Emulator
) -> None:
    store = new_store(tmp_path / "replies.sqlite3")
    body = chat_body("Same request three times")
    key = key_of(emulator.url, body)
    _, first = record_live(store, emulator.url, body)
    assert store.find_replay("replay", key, body, refresh=True) is None  # --refresh: ask again
    _, second = record_live(store, emulator.url, body)
    _, stopped = record_live(store, emulator.url, body, stop_after=3)
    record = store.lookup(key)
    assert record is not None and record.id == second.id != first.id
    stopped_record = store.get(stopped.id)
    assert stopped_record is not None and stopped_record.status is RecordStatus.STOPPED
    assert stopped_record.reply().stopped
    store.close()


def test_paced_replay_keeps_the_recorded_timing(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    emulator = emulator_factory(tokens_per_second=150)
    store = new_store(tmp_path / "replies.sqlite3")
    body = chat_body("pace")
    record_live(store, emulator.url, body)
    record = store.lookup(key_of(emulator.url, body))
    assert record is not None
    recorded = record.events[-1].offset - record.events[0].offset
    assert recorded > 0.2

    def replay(speed: float | None) -> float:
        began = time.monotonic()
        with EventStream(replay_response(record, speed=speed), CompletionEvent) as stream:
            count = sum(1 for _ in stream)
        assert count == len([event for event in record.events if event.data != "[DONE]"])
        return time.monotonic() - began

    instant, paced, doubled = replay(None), replay(1.0), replay(2.0)
    assert paced >= 0.9 * recorded
    assert 0.4 * recorded <= doubled < paced
    assert instant < paced / 4
    store.close()


def test_an_encoded_response_is_recorded_as_plain_sse(tmp_path: Path, emulator: Emulator) -> None:
    """One layer with MockTransport: a gzip body is decoded before it is recorded."""
    store = new_store(tmp_path / "replies.sqlite3")
    body = chat_body("gzip")
    with httpx.Client() as client:
        wire = client.post(emulator.url + "/v1/chat/completions", json=body).content

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
        return httpx.Response(200, headers=headers, content=gzip.compress(wire))

    recorder = store.recorder(server_url="http://mock", body=body)
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = client.send(client.build_request("POST", "http://mock/v1"), stream=True)
        with EventStream(recorder.tap(response), CompletionEvent) as stream:
            live = list(stream)
    recorder.finish()
    record = store.lookup(key_of("http://mock", body))
    assert record is not None
    assert b"".join(data for _, data in record.chunks).startswith(b"data: {")
    with EventStream(replay_response(record), CompletionEvent) as stream:
        assert list(stream) == live
    store.close()


def _wait_until_ended(store: Store, record_id: str) -> Record:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = store.get(record_id)
        if record is not None and record.status is not RecordStatus.STREAMING:
            return record
        time.sleep(0.02)
    raise AssertionError("the record never ended")


def test_a_tapped_stream_closed_without_finish_ends_by_itself(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The client on its own: no Reply, no finish(); the close tells the store."""
    store = new_store(tmp_path / "replies.sqlite3")
    whole, partial = chat_body("whole"), chat_body("partial")
    ids = []
    for body, limit in ((whole, None), (partial, 3)):
        recorder = store.recorder(server_url=emulator.url, body=body)
        ids.append(recorder.id)
        with httpx.Client() as client:
            request = client.build_request("POST", emulator.url + "/v1/chat/completions", json=body)
            response = client.send(request, stream=True)
            with EventStream(recorder.tap(response), CompletionEvent) as stream:
                live = []
                for event in stream:
                    live.append(event)
                    if limit is not None and len(live) >= limit:
                        break
    complete, stopped = (_wait_until_ended(store, rid) for rid in ids)
    assert complete.status is RecordStatus.COMPLETE and complete.finish_reason == "stop"
    assert stopped.status is RecordStatus.STOPPED and stopped.text == text_of(live)
    store.close()


def test_reasoning_and_tool_calls_are_read_back_from_the_events(tmp_path: Path) -> None:
    """finish() without a reply: the writer reads text, reasoning and tool calls from the
    events, split over chunks as servers send them."""
    store = new_store(tmp_path / "replies.sqlite3")
    recorder = store.recorder(server_url="http://h", body=chat_body("think, then call"))
    deltas = [
        {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Let me "}]}]},
        {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "think."}]}]},
        {"content": [{"type": "text", "text": "Calling."}]},
        {"tool_calls": [{"id": "c1", "index": 0, "function": {"name": "f", "arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
    ]
    for delta in deltas:
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        recorder.event(json.dumps({"id": "r", "model": "magistral", "choices": [choice]}))
    done = {"index": 0, "delta": {"content": ""}, "finish_reason": "tool_calls"}
    recorder.event(json.dumps({"id": "r", "model": "magistral", "choices": [done]}))
    recorder.finish()
    (record,) = store.history()
    assert (record.text, record.thinking) == ("Calling.", "Let me think.")
    assert record.finish_reason == "tool_calls" and record.model == "magistral"
    assert [dict(call) for call in record.tool_calls] == [
        {
            "id": "c1",
            "type": "function",
            "index": 0,
            "function": {"name": "f", "arguments": '{"a": 1}'},
        }
    ]
    assert record.messages[-1]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    store.close()
