"""A chat request through the reply store: answered from a recorded reply (nothing sent), or
sent and recorded as it streams.

The client's ``chat.stream`` / ``stream_async`` / ``complete`` / ``complete_async`` come here
when the client was given a store or a cache mode; the notebook layer always does (with the
default store). A non-streamed reply is recorded as one streamed chunk, so either kind of call
replays the other's record (they share a request key). The store package is
imported only then, so a plain client never loads it. The recorder gets the request body only,
never headers: the API key cannot reach the file (it is also handed over for redaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ._eventstream import EventStream, EventStreamAsync
from ._models import ChatCompletionResponse, CompletionEvent

if TYPE_CHECKING:
    from ._client import Mistral
    from ._reply import Reply
    from .store import CacheMode, NullStore, Record, Recorder, Store

StoreSetting = Union[str, "os.PathLike[str]", "Store", "NullStore", None]
CacheSetting = Union[str, bool, "CacheMode", None]


@dataclass(frozen=True)
class StoreSettings:
    """Where replies are recorded and whether a recorded one may answer.

    ``store``: a path, ``"off"``, a ``Store``, or None for ``NB_MISTRAL_STORE`` (default
    ``~/.nb_mistral/replies.sqlite3``). ``cache``: ``off`` | ``replay`` | ``only`` (None:
    ``off``). ``refresh``: ask again even when a record matches; the new one supersedes it.
    ``replay_speed``: None replays at once, ``1.0`` at the recorded pace."""

    store: StoreSetting = None
    cache: CacheSetting = None
    refresh: bool = False
    notebook: str | None = None
    cell_id: str | None = None
    replay_speed: float | None = None


def resolve_store(setting: StoreSetting) -> Store | NullStore:
    """The store a setting names (one per file and process)."""
    from .store import NullStore, Store, open_store

    if isinstance(setting, (Store, NullStore)):
        return setting
    return open_store(setting)


def completion_of(record: Record) -> ChatCompletionResponse:
    """A recorded reply as ``chat.complete`` returns one (streamed or not, the key is one)."""
    reply = record.reply()
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            call.model_dump(mode="json", exclude_none=True) for call in reply.tool_calls
        ]
    choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
    return ChatCompletionResponse.model_validate(
        {
            "id": reply.id or record.id,
            "model": reply.model or record.model,
            "object": "chat.completion",
            "created": int(record.created.timestamp()),
            "choices": [choice],
            "usage": record.usage,
        }
    )


def stream_chunk_of(response: ChatCompletionResponse) -> str:
    """A whole reply as one streamed chunk, so that a streamed request can replay it too."""
    data = response.model_dump(mode="json", exclude_none=True)
    choices = []
    for choice in data.get("choices", []):
        delta = {**choice.get("message", {}), "role": "assistant"}
        choices.append(
            {
                "index": choice.get("index", 0),
                "delta": delta,
                "finish_reason": choice.get("finish_reason"),
            }
        )
    return json.dumps({**data, "object": "chat.completion.chunk", "choices": choices})


def _opened(stream: EventStream[CompletionEvent]) -> EventStream[CompletionEvent]:
    stream._prime()
    return stream


async def _opened_async(
    stream: EventStreamAsync[CompletionEvent],
) -> EventStreamAsync[CompletionEvent]:
    await stream._prime()
    return stream


class StoredRequest:
    """One streamed chat request: ``open`` (or ``open_async``) gives its event stream, from the
    store or from the server; ``finish`` ends its record once the reply has ended."""

    def __init__(self, client: Mistral, body: dict[str, Any], settings: StoreSettings) -> None:
        self._client = client
        self._body = body
        self._settings = settings
        self.recorder: Recorder | None = None
        self.replayed: str | None = None  # the id of the record that answered

    def __repr__(self) -> str:
        return f"<StoredRequest {self._body.get('model')!r} at {self._client.server_url}>"

    def _lookup(self) -> Record | None:
        """The record that answers this request, or None after starting a recorder for it.
        ``only`` with no record raises ``CacheMiss`` before anything is sent."""
        from .store import CHAT_ENDPOINT, CacheMode, request_key

        settings, server_url = self._settings, self._client.server_url
        store = resolve_store(settings.store)
        key = request_key(server_url, CHAT_ENDPOINT, self._body)
        mode = CacheMode.parse(settings.cache)
        record = store.find_replay(mode, key, self._body, refresh=settings.refresh)
        if record is not None:
            self.replayed = record.id
            return record
        secret = self._client._secret
        self.recorder = store.recorder(
            server_url=server_url,
            body=self._body,
            key=key,
            notebook=settings.notebook,
            cell_id=settings.cell_id,
            secret=secret.reveal() if secret is not None else None,
        )
        return None

    async def _lookup_async(self) -> Record | None:
        """``_lookup`` off the event loop when it reads the file (cache mode not ``off``)."""
        from .store import CacheMode

        if CacheMode.parse(self._settings.cache) is CacheMode.OFF:
            return self._lookup()
        return await asyncio.to_thread(self._lookup)

    def open(self) -> EventStream[CompletionEvent]:
        from ._resources import CHAT_PATH
        from .store import replay_response

        record = self._lookup()
        if record is not None:
            speed = self._settings.replay_speed
            return _opened(EventStream(replay_response(record, speed=speed), CompletionEvent))
        recorder = self.recorder
        assert recorder is not None
        try:
            return self._client._send(
                "POST",
                CHAT_PATH,
                self._body,
                lambda response: _opened(EventStream(recorder.tap(response), CompletionEvent)),
            )
        except BaseException as exc:
            recorder.finish(error=exc)
            raise

    async def open_async(self) -> EventStreamAsync[CompletionEvent]:
        from ._resources import CHAT_PATH
        from .store import replay_response_async

        record = await self._lookup_async()
        if record is not None:
            response = replay_response_async(record, speed=self._settings.replay_speed)
            return await _opened_async(EventStreamAsync(response, CompletionEvent))
        recorder = self.recorder
        assert recorder is not None

        async def accept(response: Any) -> EventStreamAsync[CompletionEvent]:
            return await _opened_async(EventStreamAsync(recorder.tap(response), CompletionEvent))

        try:
            return await self._client._send_async("POST", CHAT_PATH, self._body, accept)
        except BaseException as exc:
            recorder.finish(error=exc)
            raise

    def complete(self) -> ChatCompletionResponse:
        """``chat.complete`` through the store."""
        from ._resources import CHAT_PATH, _completion

        record = self._lookup()
        if record is not None:
            return completion_of(record)
        try:
            response = self._client._send("POST", CHAT_PATH, self._body, _completion)
        except BaseException as exc:
            self.finish(error=exc)
            raise
        self._record_completion(response)
        return response

    async def complete_async(self) -> ChatCompletionResponse:
        from ._resources import CHAT_PATH, _completion_async

        record = await self._lookup_async()
        if record is not None:
            return completion_of(record)
        try:
            response = await self._client._send_async(
                "POST", CHAT_PATH, self._body, _completion_async
            )
        except BaseException as exc:
            self.finish(error=exc)
            raise
        self._record_completion(response)
        return response

    def _record_completion(self, response: ChatCompletionResponse) -> None:
        if self.recorder is not None:
            self.recorder.event(stream_chunk_of(response))
            self.recorder.event("[DONE]")
            self.recorder.finish()

    def finish(self, error: BaseException | None = None) -> None:
        """End the record (the first call wins); its text is read back from its events."""
        if self.recorder is not None:
            self.recorder.finish(error=error)


@contextlib.contextmanager
def recorded(request: StoredRequest, reply: Reply) -> Iterator[EventStream[CompletionEvent]]:
    """The request's event stream for ``drive``: the reply learns whether it is a replay, and
    the record ends when the stream does, however it ends (an interrupt: ``stopped``). The
    record's text comes from its own events: a reply of several tool rounds spans records."""
    with request.open() as events:
        if request.replayed is not None:
            reply.note_replay(request.replayed)
        try:
            yield events
        except BaseException as exc:
            request.finish(error=exc)
            raise
    request.finish()


@contextlib.asynccontextmanager
async def recorded_async(
    request: StoredRequest, reply: Reply
) -> AsyncIterator[EventStreamAsync[CompletionEvent]]:
    """``recorded`` for ``drive_async`` (a cancellation, such as Stop: ``stopped``)."""
    async with await request.open_async() as events:
        if request.replayed is not None:
            reply.note_replay(request.replayed)
        try:
            yield events
        except BaseException as exc:
            request.finish(error=exc)
            raise
    request.finish()


def notebook_settings(
    client: Mistral,
    cache: CacheSetting = None,
    *,
    store: StoreSetting = None,
    refresh: bool = False,
    notebook: str | None = None,
    cell_id: str | None = None,
    replay_speed: float | None = None,
) -> StoreSettings:
    """The notebook layer's settings: every reply recorded (the client's store, else the
    default one); the cache mode given, else the client's, else ``NB_MISTRAL_CACHE``."""
    from .store import CacheMode

    given = client._store_settings
    if store is None and given is not None:
        store = given.store
    if cache is None:
        cache = given.cache if given is not None and given.cache is not None else None
    mode = CacheMode.parse(cache) if cache is not None else CacheMode.from_env()
    return StoreSettings(
        store=resolve_store(store),
        cache=mode,
        refresh=refresh,
        notebook=notebook,
        cell_id=cell_id,
        replay_speed=replay_speed,
    )
