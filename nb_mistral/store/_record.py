"""``Record``: one chat request as the store kept it, and what can be rebuilt from it.

The stream is kept as the bytes that arrived, with the time each network chunk came, so a
replay can keep the pacing and any event can be read back exactly; ``events`` decodes them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .._errors import StreamError
from .._sse import ServerSentEvent, SSEDecoder

if TYPE_CHECKING:
    from .._reply import Reply

Chunks = Sequence[tuple[float, bytes]]  # (seconds since the request began, bytes)


class RecordStatus(str, Enum):
    """How a recorded request ended (``streaming`` while it goes on)."""

    STREAMING = "streaming"
    COMPLETE = "complete"
    STOPPED = "stopped"  # by the user: Stop button or kernel interrupt
    INTERRUPTED = "interrupted"  # the process ended mid-stream
    ERROR = "error"

    @classmethod
    def of_outcome(cls, error: BaseException | None) -> RecordStatus:
        """The status a reply that ended with ``error`` (or none) gets."""
        if error is None:
            return cls.COMPLETE
        if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
            return cls.STOPPED
        return cls.ERROR


@dataclass(frozen=True)
class RecordedEvent:
    """One event's ``data`` payload and when it arrived (seconds after the request began)."""

    offset: float
    data: str


def sse_frame(data: str) -> bytes:
    """One event as the wire carries it (a data line per line of ``data``)."""
    return b"data: " + data.replace("\n", "\ndata: ").encode() + b"\n\n"


def decode_events(chunks: Iterable[tuple[float, bytes]]) -> tuple[RecordedEvent, ...]:
    """The data payloads of the recorded bytes, each stamped with its chunk's arrival."""
    decoder = SSEDecoder()
    events: list[RecordedEvent] = []
    for offset, data in chunks:
        for item in decoder.feed_items(data):
            text = (
                item.data if isinstance(item, ServerSentEvent) else item.decode("utf-8", "replace")
            )
            events.append(RecordedEvent(offset, text))
    return tuple(events)


def event_payloads(events: Iterable[RecordedEvent]) -> list[dict[str, Any]]:
    """The JSON chunk dicts among the events (``[DONE]`` and anything undecodable left out)."""
    payloads = []
    for event in events:
        if event.data == "[DONE]":
            break
        try:
            payload = json.loads(event.data)
        except ValueError:
            continue
        if isinstance(payload, dict):
            payloads.append(payload)
    return payloads


def derive_reply(
    chunks: Iterable[tuple[float, bytes]],
    model: str = "",
    messages: Sequence[Mapping[str, Any]] = (),
) -> tuple[Reply, bool]:
    """A ``Reply`` filled from recorded chunks, and whether the ``[DONE]`` sentinel arrived."""
    from .._reply import Reply

    events = decode_events(chunks)
    reply = Reply(model, [dict(message) for message in messages])
    for payload in event_payloads(events):
        reply.add(payload)
    return reply, any(event.data == "[DONE]" for event in events)


def dumped(value: Any) -> Any:
    """A reply field as plain JSON data (pydantic models dumped)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, (list, tuple)):
        return [dumped(item) for item in value]
    return value


def text_of_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def prompt_of(body: Mapping[str, Any]) -> str:
    """The last user message of a chat body, as text (what a history line shows)."""
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return text_of_content(message.get("content"))
    return ""


@dataclass(frozen=True, repr=False)
class Record:
    """One chat request and its reply, as stored. ``events`` and ``reply()`` read the stream."""

    id: str
    key: str
    created: datetime
    ended: datetime | None
    server_url: str
    endpoint: str
    model: str
    prompt: str
    text: str
    thinking: str
    finish_reason: str | None
    status: RecordStatus
    error_type: str | None
    error_message: str | None
    notebook: str | None
    cell_id: str | None
    request: Mapping[str, Any] = field(compare=False, repr=False)
    tool_calls: tuple[Mapping[str, Any], ...] = field(compare=False, repr=False)
    usage: Mapping[str, Any] | None = field(compare=False, repr=False)
    load_chunks: Callable[[], Chunks] = field(compare=False, repr=False)

    def __repr__(self) -> str:
        prompt = self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "..."
        return (
            f"<Record {self.id[:8]} {self.created:%Y-%m-%d %H:%M:%S} {self.model} "
            f"{self.status.value}: {prompt!r}>"
        )

    @cached_property
    def chunks(self) -> Chunks:
        """The recorded bytes as they arrived: (seconds after the start, bytes)."""
        return self.load_chunks()

    @cached_property
    def events(self) -> tuple[RecordedEvent, ...]:
        return decode_events(self.chunks)

    @property
    def duration(self) -> float | None:
        return (self.ended - self.created).total_seconds() if self.ended else None

    @property
    def tokens(self) -> int | None:
        counted = (self.usage or {}).get("completion_tokens")
        return counted if isinstance(counted, int) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation including this reply, ready to continue (resume uses it)."""
        sent = [dict(message) for message in self.request.get("messages") or ()]
        if not self.text and not self.tool_calls:
            return sent
        answer: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            answer["tool_calls"] = [dict(call) for call in self.tool_calls]
        return [*sent, answer]

    def reply(self) -> Reply:
        """A finished ``Reply`` filled from the recorded events, as if it had just streamed."""
        reply, _ = derive_reply(self.chunks, self.model, self.request.get("messages") or ())
        reply.finish(self._ending())
        return reply

    def _ending(self) -> BaseException | None:
        if self.status is RecordStatus.COMPLETE:
            return None
        if self.status is RecordStatus.STOPPED:
            return asyncio.CancelledError()
        if self.status is RecordStatus.ERROR:
            return StreamError(f"{self.error_type or 'error'}: {self.error_message or ''}")
        return StreamError(f"the recorded reply is {self.status.value}: the process ended")


def records_to_pandas(records: Iterable[Record]) -> Any:
    """A pandas DataFrame of records, one row each (pandas is optional: an ImportError says so)."""
    try:
        import pandas  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise ImportError("records_to_pandas needs pandas: pip install pandas") from exc
    rows = [
        {
            "id": record.id,
            "created": record.created,
            "ended": record.ended,
            "status": record.status.value,
            "model": record.model,
            "prompt": record.prompt,
            "text": record.text,
            "thinking": record.thinking,
            "tokens": record.tokens,
            "finish_reason": record.finish_reason,
            "error_type": record.error_type,
            "error_message": record.error_message,
            "server_url": record.server_url,
            "notebook": record.notebook,
            "cell_id": record.cell_id,
            "key": record.key,
        }
        for record in records
    ]
    return pandas.DataFrame(rows)
