"""The notebook's Python entry points: ``stream``, ``astream`` and ``show``.

The same live view as ``%%mistral``, for code: a prompt (or messages) in, a ``Reply`` out.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ._client import MessageLike, Mistral, message_dict
from ._live import LiveView
from ._reply import Reply
from ._run import as_async_context, as_context, drive, drive_async, kernel_loop, start_background

DEFAULT_MODEL = "mistral-large-latest"

_clients: dict[tuple[str | None, str], Mistral] = {}


def default_client() -> Mistral:
    """A client from ``MISTRAL_API_KEY`` / ``MISTRAL_SERVER_URL``, reused while they hold
    (the key kept as a digest, so that nothing here holds it in clear)."""
    api_key = os.environ.get("MISTRAL_API_KEY", "")
    key = (os.environ.get("MISTRAL_SERVER_URL"), hashlib.sha256(api_key.encode()).hexdigest())
    client = _clients.get(key)
    if client is None:
        _clients.clear()
        client = _clients[key] = Mistral()
    return client


def build_messages(
    prompt: str | Sequence[MessageLike],
    *,
    system: str | None = None,
    history: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The conversation to send: earlier turns, a system prompt if none yet, the new prompt."""
    new = (
        [{"role": "user", "content": prompt}]
        if isinstance(prompt, str)
        else [message_dict(message) for message in prompt]
    )
    messages = [dict(message) for message in history] + new
    if system and not any(message.get("role") == "system" for message in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


class _Request:
    """One chat request of ``stream``/``astream``: the messages, and the reply they will fill."""

    def __init__(
        self,
        prompt: str | Sequence[MessageLike],
        model: str | None,
        system: str | None,
        client: Mistral | None,
        options: dict[str, Any],
    ) -> None:
        self.client = client or default_client()
        self.model = model or DEFAULT_MODEL
        self.messages = build_messages(prompt, system=system)
        self.options = options
        self.reply = Reply(self.model, self.messages)

    def open(self) -> Any:
        return self.client.chat.stream(model=self.model, messages=self.messages, **self.options)

    def open_async(self) -> Any:
        return self.client.chat.stream_async(
            model=self.model, messages=self.messages, **self.options
        )


def stream(
    prompt: str | Sequence[MessageLike],
    *,
    model: str | None = None,
    system: str | None = None,
    client: Mistral | None = None,
    format: str = "markdown",
    max_updates_per_second: float = 20,
    **options: Any,
) -> Reply:
    """Stream a reply with the live view, in the foreground; return the finished ``Reply``."""
    request = _Request(prompt, model, system, client, options)
    view = LiveView(request.reply, fmt=format, max_updates_per_second=max_updates_per_second)
    return drive(request.open, request.reply, view)


async def astream(
    prompt: str | Sequence[MessageLike],
    *,
    model: str | None = None,
    system: str | None = None,
    client: Mistral | None = None,
    format: str = "markdown",
    max_updates_per_second: float = 20,
    **options: Any,
) -> Reply:
    """``stream`` on the running event loop (``await nb_mistral.astream(...)``)."""
    request = _Request(prompt, model, system, client, options)
    view = LiveView(request.reply, fmt=format, max_updates_per_second=max_updates_per_second)
    return await drive_async(request.open_async, request.reply, view)


def show(
    events: Iterable[Any] | Any,
    *,
    model: str = "",
    format: str = "markdown",
    max_updates_per_second: float = 20,
) -> Reply:
    """Live-display any stream of completion events, ours or the official SDK's.

    A sync iterable is shown to its end before ``show`` returns. An async iterable streams as a
    task on the kernel's loop: the ``Reply`` comes back at once (with a Stop button), and
    ``await`` on it waits for the end.
    """
    reply = Reply(model)
    view = LiveView(reply, fmt=format, max_updates_per_second=max_updates_per_second)
    if hasattr(events, "__aiter__"):
        return start_background(lambda: as_async_context(events), reply, view, kernel_loop())
    return drive(lambda: as_context(events), reply, view)
