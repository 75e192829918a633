"""The notebook's Python entry points: ``stream``, ``astream`` and ``show``.

The same live view as ``%%mistral``, for code: a prompt (or messages) in, a ``Reply`` out. The
live view (IPython's display machinery) is imported when a reply is shown, not before, so that
``import nb_mistral`` stays light.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from ._client import Mistral
from ._conversation import DEFAULT_MAX_TOOL_ROUNDS, Conversation
from ._defaults import ReplyFormat, build_messages, default_client, model_for
from ._reply import Reply
from ._request import ChatOptions, MessageLike
from ._run import as_async_context, as_context, drive, drive_async, kernel_loop, start_background

if TYPE_CHECKING:
    from ._live import LiveView


def _live_view(reply: Reply, format: ReplyFormat, max_updates_per_second: float) -> LiveView:
    from ._live import LiveView

    return LiveView(reply, fmt=format, max_updates_per_second=max_updates_per_second)


class _Request:
    """One chat request of ``stream``/``astream``: the messages, and the reply they will fill."""

    def __init__(
        self,
        prompt: str | Sequence[MessageLike | Any],
        model: str | None,
        system: str | None,
        client: Mistral | None,
        options: ChatOptions,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    ) -> None:
        self.client = client or default_client()
        self.messages = build_messages(prompt, system=system)
        self.model = model_for(self.messages, model)
        self.reply = Reply(self.model, self.messages)
        self.rounds = Conversation.of(self.client, self.model, self.reply, options, max_tool_rounds)

    def open(self) -> AbstractContextManager[Iterable[Any]]:
        return self.rounds.open()

    def open_async(self) -> AbstractAsyncContextManager[AsyncIterable[Any]]:
        return self.rounds.open_async()


def stream(
    prompt: str | Sequence[MessageLike | Any],
    *,
    model: str | None = None,
    system: str | None = None,
    client: Mistral | None = None,
    format: ReplyFormat = "markdown",
    max_updates_per_second: float = 20,
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    **options: Unpack[ChatOptions],
) -> Reply:
    """Stream a reply with the live view, in the foreground; return the finished ``Reply``.

    ``response_format`` (a Pydantic model class or a JSON schema) fills ``reply.parsed``;
    functions in ``tools`` are called when the model asks, up to ``max_tool_rounds`` rounds."""
    request = _Request(prompt, model, system, client, options, max_tool_rounds)
    view = _live_view(request.reply, format, max_updates_per_second)
    return drive(request.open, request.reply, view)


async def astream(
    prompt: str | Sequence[MessageLike | Any],
    *,
    model: str | None = None,
    system: str | None = None,
    client: Mistral | None = None,
    format: ReplyFormat = "markdown",
    max_updates_per_second: float = 20,
    max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
    **options: Unpack[ChatOptions],
) -> Reply:
    """``stream`` on the running event loop (``await nb_mistral.astream(...)``); async tool
    functions are awaited on it."""
    request = _Request(prompt, model, system, client, options, max_tool_rounds)
    view = _live_view(request.reply, format, max_updates_per_second)
    return await drive_async(request.open_async, request.reply, view)


def show(
    events: Iterable[Any] | AsyncIterable[Any],
    *,
    model: str = "",
    format: ReplyFormat = "markdown",
    max_updates_per_second: float = 20,
) -> Reply:
    """Live-display any stream of completion events, ours or the official SDK's.

    A sync iterable is shown to its end before ``show`` returns. An async iterable streams as a
    task on the kernel's loop: the ``Reply`` comes back at once (with a Stop button), and
    ``await`` on it waits for the end.
    """
    reply = Reply(model)
    view = _live_view(reply, format, max_updates_per_second)
    if hasattr(events, "__aiter__"):
        return start_background(lambda: as_async_context(events), reply, view, kernel_loop())
    return drive(lambda: as_context(events), reply, view)
