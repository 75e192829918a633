"""``Reply``: one streamed answer, collected as it arrives and usable as a Python value.

It takes events from our client or any look-alike (the official ``mistralai`` SDK's events have
the same shape), so it reads attributes and dict keys alike. Nothing that arrived is ever lost:
an error or a stop leaves the partial text in place, with ``.error`` saying what ended it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Iterator
from typing import Any

from ._models import FunctionCall, ToolCall
from ._render import ReplyRenderer, defang, encodable

# str's methods (all read-only: str is immutable), answered from the text of a Reply
_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_"))


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _counts(usage: Any) -> dict[str, int]:
    counts = {name: _get(usage, name) for name in _COUNTS} if usage is not None else {}
    return {name: value for name, value in counts.items() if isinstance(value, int)}


def _with_earlier_rounds(usage: Any, spent: dict[str, int]) -> Any:
    """A tool loop's usage: this round's counts plus those of the rounds before it."""
    if not spent:
        return usage
    from ._models import UsageInfo

    counts = _counts(usage)
    return UsageInfo(**{name: counts.get(name, 0) + spent.get(name, 0) for name in _COUNTS})


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
        self._finished: asyncio.Event | None = None  # made by the first waiter (a batch holds
        # many thousands of replies, and an Event is a third of a reply's memory)
        self._task: asyncio.Task[Any] | None = None
        self._stop_button: Any = None  # the Stop widget of a background reply, if shown
        self.replay_of: str | None = None  # the stored record that answered, if replayed
        # structured output and tool rounds (nb_mistral._conversation)
        self.structured = False  # a response_format asked for JSON (the view shows it so)
        self.parsed: Any = None  # the validated object of a response_format request
        self.parse_error: str | None = None  # why .parsed is None when one was asked for
        self._exchange: list[dict[str, Any]] = []  # tool rounds: assistant calls, tool results
        self._round_text = 0  # where the text and the calls of the current round start
        self._round_calls = 0
        self._spent: dict[str, int] = {}  # token counts of the tool rounds before this one

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
            self.usage = _with_earlier_rounds(usage, self._spent)
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
        for existing in self.tool_calls[self._round_calls :]:
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

    def round_calls(self) -> list[ToolCall]:
        """The tool calls of the current round (the model's last answer)."""
        return self.tool_calls[self._round_calls :]

    def end_tool_round(self, results: list[dict[str, Any]]) -> None:
        """Close a round: its text and calls become an assistant message, followed by the
        tool messages that answer the calls; the next round starts empty."""
        self._exchange += [*self._round_messages(), *results]
        self._spent = _counts(self.usage)
        self._round_text = len(self._text)
        self._round_calls = len(self.tool_calls)

    def expect_structure(self) -> None:
        """The reply is to be JSON for a ``response_format``: shown as such while it grows."""
        self.structured = True

    def tool_result(self, call_id: str | None) -> str | None:
        """The content sent back to the model for one tool call, once it ran."""
        for message in self._exchange:
            if message.get("role") == "tool" and message.get("tool_call_id") == call_id:
                content = message.get("content")
                return content if isinstance(content, str) else str(content)
        return None

    def set_parsed(self, parsed: Any, error: str | None) -> None:
        """The structured value of the reply, or why there is none (the text stays)."""
        self.parsed, self.parse_error = parsed, error

    def _round_messages(self) -> list[dict[str, Any]]:
        text = encodable("".join(self._text[self._round_text :]))
        calls = self.tool_calls[self._round_calls :]
        if not text and not calls:
            return []
        answer: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            answer["tool_calls"] = [
                call.model_dump(mode="json", exclude_none=True) for call in calls
            ]
        return [answer]

    def run_as(self, task: asyncio.Task[Any], stop_button: Any = None) -> None:
        """The task that fills this reply in the background (and its Stop button, if shown):
        ``stop`` cancels it, and the button belongs to the reply it stops."""
        self._task = task
        self._stop_button = stop_button

    def note_replay(self, record_id: str) -> None:
        """This reply is answered from the reply store's record ``record_id``: nothing sent."""
        self.replay_of = record_id

    @property
    def replayed(self) -> bool:
        """Answered from the reply store (cache mode ``replay`` or ``only``), not the server."""
        return self.replay_of is not None

    @property
    def stop_button(self) -> Any:
        """The Stop widget beside a background reply, or None."""
        return self._stop_button

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
        if self._finished is not None:
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
        servers refuse. Tool rounds are in it: each call and the result sent back."""
        return [*self.request_messages, *self._exchange, *self._round_messages()]

    def __str__(self) -> str:
        return self.text

    # -- a string at heart: read-only str behaviour, answered from the text so far ----------

    def __len__(self) -> int:
        return len(self.text)

    def __bool__(self) -> bool:
        """Always true, as an object: ``if reply:`` must not depend on whether text came."""
        return True

    def __contains__(self, part: object) -> bool:
        return isinstance(part, str) and part in self.text

    def __iter__(self) -> Iterator[str]:
        return iter(self.text)

    def __getitem__(self, index: int | slice) -> str:
        return self.text[index]

    def __add__(self, other: str) -> str:
        if not isinstance(other, str):
            return NotImplemented
        return self.text + other

    def __radd__(self, other: str) -> str:
        if not isinstance(other, str):
            return NotImplemented
        return other + self.text

    def __getattr__(self, name: str) -> Any:
        if name in _STR_METHODS:
            return getattr(self.text, name)
        raise AttributeError(f"'Reply' object has no attribute {name!r}")

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
            if self._finished is None:
                self._finished = asyncio.Event()
            await self._finished.wait()
        return self
