"""The reply store as a batch's ``ReplyCache``: every finished item is recorded, and under the
``replay`` (or ``only``) cache mode an item recorded before is replayed instead of sent, so
running the same ``map`` again sends only what did not finish.

A batch's replies arrive through the client's own stream, not a tapped response, so an item is
recorded once it has finished, as one event carrying the whole answer; replaying it gives the
same text, reasoning, tool calls, usage and finish reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._reply import Reply
from ..store import CHAT_ENDPOINT, CacheMode, open_store, request_key


class StoreCache:
    """``cache="replay"`` (or ``"only"``, ``"off"``) of ``map``: the reply store behind the
    ``ReplyCache`` interface. ``off`` records without replaying."""

    def __init__(
        self, server_url: str, mode: CacheMode | str = CacheMode.REPLAY, store: Any = None
    ):
        self.mode = CacheMode.parse(mode)
        self._server_url = server_url
        self._store = store if store is not None else open_store()

    def lookup(self, request: Mapping[str, Any]) -> Reply | None:
        """A recorded complete reply (``only``: ``CacheMiss`` when there is none)."""
        key = request_key(self._server_url, CHAT_ENDPOINT, request)
        record = self._store.find_replay(self.mode, key, request)
        reply: Reply | None = record.reply() if record is not None else None
        return reply

    def record(self, request: Mapping[str, Any], reply: Reply) -> None:
        recorder = self._store.recorder(server_url=self._server_url, body=request)
        recorder.event(json.dumps(_whole_reply_chunk(reply), ensure_ascii=False))
        recorder.finish(reply=reply)


def _whole_reply_chunk(reply: Reply) -> dict[str, Any]:
    """One ``chat.completion.chunk`` holding the whole reply."""
    content: Any = reply.text
    if reply.thinking:
        thinking = [{"type": "thinking", "thinking": [{"type": "text", "text": reply.thinking}]}]
        content = [*thinking, {"type": "text", "text": reply.text}]
    delta: dict[str, Any] = {"role": "assistant", "content": content}
    if reply.tool_calls:
        delta["tool_calls"] = [
            c.model_dump(mode="json", exclude_none=True) for c in reply.tool_calls
        ]
    usage = reply.usage
    if usage is not None and not isinstance(usage, Mapping):
        dump = getattr(usage, "model_dump", None) or getattr(usage, "_asdict", None)
        usage = dump() if dump is not None else None
    chunk: dict[str, Any] = {
        "id": reply.id or "",
        "object": "chat.completion.chunk",
        "model": reply.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": reply.finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = dict(usage)
    return chunk
