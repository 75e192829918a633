"""``Reply``: one streamed answer, collected as it arrives and usable as a Python value.

It takes events from our client or any look-alike (the official ``mistralai`` SDK's events have
the same shape), so it reads attributes and dict keys alike. Nothing that arrived is ever lost:
an error or a stop leaves the partial text in place, with ``.error`` saying what ended it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Any

from ._models import FunctionCall, ToolCall
from ._render import ReplyRenderer, defang, encodable


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class Reply:
    """The answer to one request: text, reasoning, tool calls, usage, and how it ended."""

    def __init__(self, model: str = "", messages: list[dict[str, Any]] | None = None) -> None:
        self.model = model
        self.request_messages: list[dict[str, Any]] = list(messages or [])
        self.id: str | None = None
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.tool_calls: list[ToolCall] = []
        self.error: BaseException | None = None
        self.done = False
        self.deltas = 0  # events that carried answer or reasoning text
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._raw_cache: str | None = ""
        self._text_cache: str | None = ""
        self._finished = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._stop_button: Any = None  # the Stop widget of a background reply, if shown

    # -- filling ---------------------------------------------------------------------------

    def add(self, event: Any) -> None:
        """Take one completion event (ours, the SDK's, or a chunk dict)."""
        chunk = _get(event, "data", event)
        if self.id is None:
            self.id = _get(chunk, "id")
        model = _get(chunk, "model")
        if model:
            self.model = model
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = usage
        for choice in _get(chunk, "choices", None) or ():
            if _get(choice, "index", 0) not in (0, None):
                continue
            delta = _get(choice, "delta")
            if delta is not None:
                self._add_content(_get(delta, "content"))
                for call in _get(delta, "tool_calls", None) or ():
                    self._add_tool_call(call)
            reason = _get(choice, "finish_reason")
            if reason is not None:
                self.finish_reason = str(reason)

    def _add_content(self, content: Any) -> None:
        if not content:
            return
        if isinstance(content, str):
            self._append_text(content)
            return
        for part in content:
            kind = _get(part, "type")
            if kind == "text":
                self._append_text(_get(part, "text", "") or "")
            elif kind == "thinking":
                for inner in _get(part, "thinking", None) or ():
                    text = inner if isinstance(inner, str) else _get(inner, "text", "")
                    if text:
                        self._thinking.append(text)
                        self._count()

    def _append_text(self, text: str) -> None:
        if text:
            self._text.append(text)
            self._raw_cache = self._text_cache = None
            self._count()

    def _count(self) -> None:
        self.deltas += 1
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def _add_tool_call(self, call: Any) -> None:
        function = _get(call, "function")
        index = _get(call, "index")
        name = _get(function, "name", "") or ""
        arguments = _get(function, "arguments", "") or ""
        for existing in self.tool_calls:
            if index is not None and existing.index == index and not _get(call, "id"):
                # a continuation of a call split over several chunks
                previous = existing.function.arguments
                if isinstance(previous, str) and isinstance(arguments, str):
                    existing.function.arguments = previous + arguments
                return
        self.tool_calls.append(
            ToolCall(
                id=_get(call, "id"),
                type=_get(call, "type", "function"),
                function=FunctionCall(name=name, arguments=arguments),
                index=index,
            )
        )

    def stop(self) -> None:
        """Stop a background reply (what its Stop button does); the partial text stays."""
        if self._task is not None and not self.done:
            self._task.cancel()

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the reply complete (or ended by ``error``); waiters of ``await reply`` wake."""
        if self.done:
            return
        self.error = error
        self.done = True
        self.ended_at = time.monotonic()
        self._finished.set()

    # -- reading ---------------------------------------------------------------------------

    @property
    def raw_text(self) -> str:
        """The answer exactly as it arrived, lone surrogates included (views show them as
        U+FFFD); ``text`` is the same minus what no output could encode."""
        if self._raw_cache is None:
            self._raw_cache = "".join(self._text)
        return self._raw_cache

    @property
    def text(self) -> str:
        if self._text_cache is None:
            self._text_cache = encodable(self.raw_text)
        return self._text_cache

    @property
    def raw_thinking(self) -> str:
        """The reasoning as it arrived (see ``raw_text``)."""
        return "".join(self._thinking)

    @property
    def thinking(self) -> str:
        return encodable(self.raw_thinking)

    @property
    def tokens(self) -> int:
        """Completion tokens: the server's count when it gave one, else the deltas seen."""
        counted = _get(self.usage, "completion_tokens") if self.usage is not None else None
        return counted if isinstance(counted, int) else self.deltas

    @property
    def elapsed(self) -> float:
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.started

    @property
    def stopped(self) -> bool:
        """Ended by the user (Stop button or kernel interrupt) rather than by the server."""
        return isinstance(self.error, (KeyboardInterrupt, asyncio.CancelledError))

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation including this reply, ready to send again (``-c`` uses it). A reply
        that brought nothing (an error before any text) adds no empty assistant turn, which
        servers refuse."""
        if not self.text and not self.tool_calls:
            return list(self.request_messages)
        answer: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            answer["tool_calls"] = [
                call.model_dump(mode="json", exclude_none=True) for call in self.tool_calls
            ]
        return [*self.request_messages, answer]

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        state = "done" if self.done else "streaming"
        if self.error is not None:
            state = "stopped" if self.stopped else f"error: {type(self.error).__name__}"
        text = self.text
        shown = text if len(text) <= 60 else text[:57] + "..."
        return defang(f"<Reply {self.model} ({state}, {self.tokens} tokens): {shown!r}>")

    def _repr_html_(self) -> str:
        """The reply's view, sanitised like the live one (never Markdown for the front end
        to render: its parse is not ours)."""
        return ReplyRenderer(self).html()

    def __await__(self) -> Generator[Any, None, Reply]:
        return self._wait().__await__()

    async def _wait(self) -> Reply:
        if not self.done:
            await self._finished.wait()
        return self
