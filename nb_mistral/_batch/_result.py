"""``Batch``: the replies of a batch in input order, filling while it runs.

A batch may be filled by a worker thread (``map`` in a kernel, whose loop is busy with the
cell) and read from the kernel's thread, so its state changes only through its own methods,
and waiting for it works from any thread or event loop.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Callable, Generator, Hashable, Iterator, Sequence
from typing import Any, overload

from pydantic import BaseModel

from .._errors import MistralError
from .._reply import Reply
from .._structured import Structure
from ._items import Items
from ._settled import Settled


class BatchError(MistralError):
    """An item failed and the batch ran with ``errors="raise"``; ``.batch`` holds what
    finished, ``.index`` and ``.error`` say which item failed and why."""

    def __init__(self, batch: Batch, index: int, error: BaseException) -> None:
        super().__init__(f"item {index} failed: {type(error).__name__}: {error}")
        self.batch = batch
        self.index = index
        self.error = error


class ItemState(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"  # stopped while running, or never run


class Batch(Sequence[Reply]):
    """The ``Reply`` of every item, in input order; ``await batch`` waits for the end."""

    def __init__(self, items: Items, *, model: str = "") -> None:
        self.model = model
        self.total = items.total
        self._pandas_index = items.pandas_index
        self._series_name = items.series_name
        self._replies: list[Reply | Settled | None] = []  # None: a Batch API item not back yet
        self._labels: list[Hashable] = []
        self._states: list[ItemState] = []
        self._counts = dict.fromkeys(ItemState, 0)
        self._running: set[int] = set()
        self._ended_tokens = 0
        self.replayed = 0  # items answered from the cache, not sent
        self._pauses: list[tuple[float, float]] = []
        self.done = False
        self.error: BaseException | None = None  # what ended the whole batch early, if anything
        self._finished = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._structure: Structure | None = None  # what each reply is parsed into, if asked
        self._lock = threading.Lock()
        self._stopper: Callable[[], None] | None = None

    # -- filled by the runners --------------------------------------------------------------

    def _add(self, label: Hashable, reply: Reply | None) -> int:
        """A new item, pending; returns its position."""
        self._replies.append(reply)
        if self._pandas_index is not None:  # else the label is the position: not stored
            self._labels.append(label)
        self._states.append(ItemState.PENDING)
        self._counts[ItemState.PENDING] += 1
        return len(self._replies) - 1

    def _set_state(self, index: int, state: ItemState) -> None:
        self._counts[self._states[index]] -= 1
        self._states[index] = state
        self._counts[state] += 1
        if state is ItemState.RUNNING:
            self._running.add(index)
        else:
            self._running.discard(index)
        if state in (ItemState.DONE, ItemState.FAILED, ItemState.STOPPED):
            entry = self._replies[index]
            self._ended_tokens += entry.tokens if entry is not None else 0

    def _settle(self, index: int, settled: Settled, state: ItemState) -> None:
        """A Batch API item's result, held compactly (its ``Reply`` is made when asked for)."""
        self._replies[index] = settled
        self._set_state(index, state)

    def _is_settled(self, index: int) -> bool:
        entry = self._replies[index]
        return entry is not None and (not isinstance(entry, Reply) or entry.done)

    def _paused(self, start: float, until: float) -> None:
        self._pauses.append((start, until))

    def _count_replayed(self) -> None:
        self.replayed += 1

    def _parse_with(self, structure: Structure | None) -> None:
        """``response_format=``: each finished reply gets ``.parsed`` / ``.parse_error``."""
        self._structure = structure

    def _parsed(self, reply: Reply) -> Reply:
        structure = self._structure
        unparsed = reply.parsed is None and reply.parse_error is None
        if structure is not None and reply.done and reply.error is None and unparsed:
            reply.set_parsed(*structure.parse(reply.text))
        return reply

    def _on_stop(self, stopper: Callable[[], None]) -> None:
        self._stopper = stopper

    def _finish(self, error: BaseException | None = None) -> None:
        with self._lock:
            if self.done:
                return
            self.error = error
            self.done = True
            self._stopper = None
            waiters, self._waiters = self._waiters, []
        self._finished.set()
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    # -- reading ------------------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> Reply: ...
    @overload
    def __getitem__(self, index: slice) -> list[Reply]: ...
    def __getitem__(self, index: int | slice) -> Reply | list[Reply]:
        if isinstance(index, slice):
            return [self[position] for position in range(*index.indices(len(self)))]
        entry = self._replies[index]
        if isinstance(entry, Reply):
            return self._parsed(entry)
        reply = entry.reply() if entry is not None else Reply(self.model)
        self._replies[index] = reply
        return self._parsed(reply)

    def __len__(self) -> int:
        return len(self._replies)

    def __iter__(self) -> Iterator[Reply]:
        return (self[position] for position in range(len(self._replies)))

    def _entries(self) -> list[Reply | Settled]:
        """Every item's reply or compact result, none made for the asking."""
        return [entry for entry in list(self._replies) if entry is not None]

    @property
    def texts(self) -> list[str]:
        return [entry.text for entry in self._entries()]

    @property
    def labels(self) -> list[Hashable]:
        """Each item's label: its pandas index label, else its position."""
        if self._pandas_index is None:
            return list(range(len(self._replies)))
        return list(self._labels)

    @property
    def errors(self) -> dict[int, BaseException]:
        """Position → what ended that item (stopped items included)."""
        entries = list(self._replies)
        return {i: e.error for i, e in enumerate(entries) if e is not None and e.error is not None}

    @property
    def pauses(self) -> list[tuple[float, float]]:
        """Each 429's pause of every worker, as (from, until) in ``time.monotonic`` seconds."""
        return list(self._pauses)

    @property
    def usage(self) -> dict[str, int]:
        """Token totals over the items that reported usage."""
        totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for entry in self._entries():
            for name in totals:
                value = _field(entry.usage, name)
                if isinstance(value, int):
                    totals[name] += value
        return totals

    @property
    def finished(self) -> int:
        return self._counts[ItemState.DONE]

    @property
    def failed(self) -> int:
        return self._counts[ItemState.FAILED]

    @property
    def running(self) -> int:
        return self._counts[ItemState.RUNNING]

    @property
    def stopped(self) -> int:
        return self._counts[ItemState.STOPPED]

    @property
    def tokens(self) -> int:
        """Completion tokens so far, the running items' included."""
        entries = self._replies
        running = sum(
            entry.tokens for index in list(self._running) if (entry := entries[index]) is not None
        )
        return self._ended_tokens + running

    def stop(self) -> None:
        """Stop the batch: every stream closes at once; finished replies stay."""
        stopper = self._stopper
        if stopper is not None and not self.done:
            stopper()

    def wait(self, timeout: float | None = None) -> bool:
        """Block this thread until the batch ends (from another thread than its runner's)."""
        return self._finished.wait(timeout)

    def __await__(self) -> Generator[Any, None, Batch]:
        return self._wait().__await__()

    async def _wait(self) -> Batch:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self.done:
                self._waiters.append((loop, future))
            else:
                future.set_result(None)
        await future
        return self

    def to_pandas(self) -> Any:
        """A Series of texts on the input's index when the input was pandas (items not run
        are NaN), else a DataFrame of index / text / error / tokens. With ``response_format``,
        the parsed objects' fields become the columns (a ``parse_error`` column says why a row
        has none)."""
        import pandas as pd  # type: ignore[import-untyped]

        if self._structure is not None:
            return self._parsed_frame(pd)
        replies = self._entries()
        labels = self.labels[: len(replies)]
        if self._pandas_index is not None:
            series = pd.Series([r.text for r in replies], index=labels, name=self._series_name)
            return series.reindex(self._pandas_index)
        return pd.DataFrame(
            {
                "index": labels,
                "text": [r.text for r in replies],
                "error": [_describe(r.error) for r in replies],
                "tokens": [r.tokens for r in replies],
            }
        )

    def _parsed_frame(self, pd: Any) -> Any:
        replies = [self[position] for position in range(len(self._replies))]
        rows = [_fields(reply.parsed) for reply in replies]
        frame = pd.DataFrame(rows, index=self.labels[: len(replies)])
        errors = [reply.parse_error or _describe(reply.error) for reply in replies]
        if any(errors):
            frame["parse_error"] = errors
        if self._pandas_index is not None:
            return frame.reindex(self._pandas_index)
        return frame

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        total = self.total if self.total is not None else "?"
        return (
            f"<Batch {self.model} ({state}): {self.finished} done, {self.failed} failed, "
            f"{self.running} running of {total}>"
        )


def _fields(parsed: Any) -> dict[str, Any]:
    """A parsed object as one row: a model's fields, a dict's keys, else one ``value``."""
    if parsed is None:
        return {}
    if isinstance(parsed, BaseModel):
        return parsed.model_dump()
    if isinstance(parsed, dict):
        return parsed
    return {"value": parsed}


def _describe(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
        return "stopped"
    return f"{type(error).__name__}: {error}"


def _field(usage: Any, name: str) -> Any:
    if usage is None:
        return None
    if isinstance(usage, dict):
        return usage.get(name)
    return getattr(usage, name, None)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
