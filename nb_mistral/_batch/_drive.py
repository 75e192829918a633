"""Where a live batch runs: a worker thread with its own loop (``map``, whose caller may be a
kernel cell holding the kernel's loop, or a plain script), a task on the running loop
(``amap``), or a task on the kernel's loop that returns at once (``wait=False``).

Progress is pushed from the caller's side (the waiting thread, or a ticker task on the loop),
so the display always belongs to the cell that started the batch. Stopping cancels the
runner's task on its own loop; every stream closes there, and the loop is left empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from ._progress import INTERVAL, ProgressView, progress_view
from ._result import Batch


class BatchInterrupted(KeyboardInterrupt):
    """A kernel interrupt (or Ctrl-C) stopped a batch; ``.batch`` keeps what finished."""

    def __init__(self, batch: Batch) -> None:
        super().__init__(
            f"batch stopped: {batch.finished} done, {batch.failed} failed; "
            "the finished replies are in this exception's .batch"
        )
        self.batch = batch


Run = Callable[[], Coroutine[Any, Any, None]]


def run_in_thread(batch: Batch, run: Run) -> threading.Thread:
    """Start ``run`` on a new loop in a daemon thread; ``batch.stop()`` cancels it there."""
    loop = asyncio.new_event_loop()
    task = _task(loop, batch, run)

    def target() -> None:
        try:
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
            loop.run_until_complete(_cancel_leftovers())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="nb_mistral-batch", daemon=True)
    thread.start()
    return thread


def wait_in_foreground(batch: Batch, run: Run, progress: bool) -> Batch:
    """Run to the end in a worker thread, showing progress from this one; an interrupt stops
    every stream and raises ``BatchInterrupted`` holding the batch."""
    view = progress_view(batch, progress)
    thread = run_in_thread(batch, run)
    try:
        while not batch.wait(INTERVAL):
            if view is not None:
                view.update()
    except KeyboardInterrupt:
        batch.stop()
        thread.join()
        _finish(view)
        raise BatchInterrupted(batch) from None
    thread.join()
    _finish(view)
    _raise_failure(batch)
    return batch


async def wait_on_loop(batch: Batch, run: Run, progress: bool) -> Batch:
    """Run on the running loop; cancelling the caller stops the batch."""
    loop = asyncio.get_running_loop()
    task = _task(loop, batch, run)
    view = progress_view(batch, progress)
    ticker = loop.create_task(_tick(batch, view)) if view is not None else None
    try:
        await asyncio.wait({task})
    except BaseException:
        task.cancel()
        await asyncio.wait({task})
        raise
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.wait({ticker})
        _retrieve(task)
    _raise_failure(batch)
    return batch


def start_on_loop(batch: Batch, run: Run, progress: bool, loop: asyncio.AbstractEventLoop) -> Batch:
    """Run as a task on ``loop`` (the kernel's) and return at once, with a Stop button."""
    task = _task(loop, batch, run)
    task.add_done_callback(_retrieve)
    view = progress_view(batch, progress, on_stop=batch.stop)
    if view is not None:
        ticker = loop.create_task(_tick(batch, view))
        task.add_done_callback(lambda _task: ticker.cancel())
    return batch


def _task(loop: asyncio.AbstractEventLoop, batch: Batch, run: Run) -> asyncio.Task[None]:
    """The runner's task on ``loop``, stopped by ``batch.stop()`` from any thread. A task
    cancelled before it began never ran the runner's own ending: the batch ends here then."""
    task = loop.create_task(run())
    batch._on_stop(lambda: _cancel_threadsafe(loop, task))
    task.add_done_callback(lambda _task: batch._finish(asyncio.CancelledError()))
    return task


async def _tick(batch: Batch, view: ProgressView) -> None:
    """Update the display at most ``MAX_UPDATES_PER_SECOND`` times a second until the batch
    ends (or this task is cancelled, when the runner's task ends)."""
    try:
        while not batch.done:
            view.update()
            await asyncio.sleep(INTERVAL)
    finally:
        view.finish()


def _raise_failure(batch: Batch) -> None:
    """What ended the batch early, unless it was a stop: ``BatchError`` for
    ``errors="raise"``, or whatever broke (the items' own errors stay in their replies)."""
    error = batch.error
    if error is not None and not isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
        raise error


def _finish(view: ProgressView | None) -> None:
    if view is not None:
        view.finish()


def _cancel_threadsafe(loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to stop
        loop.call_soon_threadsafe(task.cancel)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark the task's outcome as seen (the batch holds it), so asyncio does not log it."""
    if not task.cancelled():
        task.exception()


async def _cancel_leftovers() -> None:
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
