"""One request that may take several rounds: tool calls run between them, and the final text
parsed into the requested structure.

It is a source of completion events like a single stream (a context manager yielding events),
so the foreground, async and background drivers of ``_run`` drive it unchanged: between two
rounds it runs the calls the model asked for, records them in the ``Reply``, and opens the next
stream with the grown conversation. Leaving the block closes whichever stream is open.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING, Any

from ._reply import Reply
from ._structured import Structure
from ._tools import Toolbox, ToolResult

if TYPE_CHECKING:
    from ._client import Mistral

DEFAULT_MAX_TOOL_ROUNDS = 5


class Conversation:
    """The rounds of one reply. ``options`` are the request fields in their wire form."""

    def __init__(
        self,
        client: Mistral,
        model: str,
        reply: Reply,
        options: dict[str, Any],
        *,
        toolbox: Toolbox | None = None,
        structure: Structure | None = None,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    ) -> None:
        self.client = client
        self.model = model
        self.reply = reply
        self.options = dict(options)
        self.toolbox = toolbox
        self.structure = structure
        self.max_tool_rounds = max_tool_rounds
        if toolbox is not None:
            self.options["tools"] = toolbox.specs()
        if structure is not None:
            self.options["response_format"] = structure.response_format
            reply.expect_structure()

    @classmethod
    def of(
        cls,
        client: Mistral,
        model: str,
        reply: Reply,
        options: Any,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    ) -> Conversation:
        """From user options: functions in ``tools`` and a class in ``response_format`` are
        taken apart from the rest."""
        rest = dict(options)
        toolbox = Toolbox.of(rest.get("tools"))
        if toolbox is not None:
            del rest["tools"]
        structure = Structure.of(rest.pop("response_format", None))
        return cls(
            client,
            model,
            reply,
            rest,
            toolbox=toolbox,
            structure=structure,
            max_tool_rounds=max_tool_rounds,
        )

    def _wants_tools(self, rounds: int) -> bool:
        return (
            self.toolbox is not None
            and bool(self.reply.round_calls())
            and rounds < self.max_tool_rounds
        )

    def _finish(self) -> None:
        if self.toolbox is not None and self.reply.round_calls():
            # the limit was reached: answer the calls left, so that the conversation can go
            # on (-c) and says why they did not run
            why = (
                f"error: not run: the limit of max_tool_rounds ({self.max_tool_rounds}) was reached"
            )
            self.reply.end_tool_round(
                [ToolResult(call, why, ok=False).message() for call in self.reply.round_calls()]
            )
        if self.structure is not None:
            self.reply.set_parsed(*self.structure.parse(self.reply.text))

    def _events(self) -> Generator[Any, None, None]:
        rounds = 0
        while True:
            messages = self.reply.messages
            with self.client.chat.stream(model=self.model, messages=messages, **self.options) as s:
                yield from s
            if not self._wants_tools(rounds):
                break
            assert self.toolbox is not None
            results = [self.toolbox.run(call).message() for call in self.reply.round_calls()]
            self.reply.end_tool_round(results)
            rounds += 1
        self._finish()

    async def _aevents(self) -> AsyncGenerator[Any, None]:
        rounds = 0
        while True:
            messages = self.reply.messages
            chat = self.client.chat
            async with chat.stream_async(model=self.model, messages=messages, **self.options) as s:
                async for event in s:
                    yield event
            if not self._wants_tools(rounds):
                break
            assert self.toolbox is not None
            results = [
                (await self.toolbox.arun(call)).message() for call in self.reply.round_calls()
            ]
            self.reply.end_tool_round(results)
            rounds += 1
        self._finish()

    @contextlib.contextmanager
    def open(self) -> Iterator[Iterator[Any]]:
        """The events of every round (``drive``'s ``open_stream``)."""
        events = self._events()
        try:
            yield events
        finally:
            events.close()

    @contextlib.asynccontextmanager
    async def open_async(self) -> AsyncIterator[AsyncIterator[Any]]:
        """The async twin (``drive_async`` / ``start_background``)."""
        events = self._aevents()
        try:
            yield events
        finally:
            await events.aclose()
