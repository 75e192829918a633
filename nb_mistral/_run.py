"""Driving a stream into a ``Reply`` and its live view: in the foreground, or as a task on the
kernel's event loop. Whatever ends the stream (the end, an error, an interrupt, Stop), the
connection is closed by the stream's context manager and the reply keeps what arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ._reply import Reply

if TYPE_CHECKING:
    from ._live import LiveView

OpenStream = Callable[[], AbstractContextManager[Iterable[Any]]]
OpenStreamAsync = Callable[[], AbstractAsyncContextManager[AsyncIterable[Any]]]


class View(Protocol):
    """What shows a reply while it fills: the live view, or a message of the chat widget."""

    def start(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None: ...
    def refresh(self) -> None: ...
    def finish(self) -> None: ...


def as_context(events: Any) -> AbstractContextManager[Iterable[Any]]:
    """Any iterable of events as a context manager that closes it, if it can be closed."""
    if hasattr(events, "__enter__"):
        return events  # type: ignore[no-any-return]
    if hasattr(events, "close"):
        return contextlib.closing(events)
    return contextlib.nullcontext(events)


def as_async_context(events: Any) -> AbstractAsyncContextManager[AsyncIterable[Any]]:
    """Any async iterable of events as an async context manager that closes it."""
    if hasattr(events, "__aenter__"):
        return events  # type: ignore[no-any-return]
    if hasattr(events, "aclose"):
        return contextlib.aclosing(events)
    return contextlib.nullcontext(events)


def drive(open_stream: OpenStream, reply: Reply, view: View) -> Reply:
    """Stream to the end in the foreground; errors (and interrupts) propagate after the reply
    has taken them, so the caller decides how to show them."""
    view.start()
    try:
        with open_stream() as events:
            for event in events:
                reply.add(event)
                view.refresh()
    except BaseException as exc:
        reply.finish(exc)
        raise
    else:
        reply.finish()
    finally:
        view.finish()
    return reply


async def drive_async(open_stream: OpenStreamAsync, reply: Reply, view: View) -> Reply:
    """``drive`` on the running event loop; a cancellation closes the connection."""
    view.start(loop=asyncio.get_running_loop())
    try:
        async with open_stream() as events:
            async for event in events:
                reply.add(event)
                view.refresh()
    except BaseException as exc:
        reply.finish(exc)
        raise
    else:
        reply.finish()
    finally:
        view.finish()
    return reply


def start_background(
    open_stream: OpenStreamAsync,
    reply: Reply,
    view: LiveView,
    loop: asyncio.AbstractEventLoop,
    *,
    stop_button: bool = True,
) -> Reply:
    """Run the stream as a task on ``loop`` and return at once; the reply fills as it goes.
    Errors end up in ``reply.error`` and in the view, since nobody awaits the task."""

    async def run() -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await drive_async(open_stream, reply, view)

    def settle(task: asyncio.Task[None]) -> None:
        # a task cancelled before it ran never entered drive_async: end the reply here
        if not reply.done:
            reply.finish(asyncio.CancelledError())
            view.finish()

    view.start(loop=loop)  # now, so the output belongs to the cell that asked for it
    task = loop.create_task(run())
    task.add_done_callback(settle)
    reply.run_as(task, view.show_stop_button(reply.stop) if stop_button else None)
    return reply


def kernel_loop() -> asyncio.AbstractEventLoop:
    """The event loop the kernel runs cells on: ipykernel runs even a sync cell from a task on
    its loop, so the loop is running in this thread."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "background streaming needs a running event loop (a Jupyter kernel has one)"
        ) from None
