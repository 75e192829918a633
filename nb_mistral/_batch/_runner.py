"""The live backend: every item streamed through ``EventStreamAsync``, at most ``concurrency``
in flight, on whatever loop runs it (the kernel's, or a worker thread's).

Workers draw items one at a time from the input (a generator is never read ahead), so memory
holds the replies, not the queue. A 429 pauses them all (``AdaptiveLimit``); 5xx and connection
failures are retried per item by the client's policy; an item that still fails keeps its error
in its ``Reply``. Cancelling ``run`` stops every stream at once: each ``async with`` closes its
connection, and the finished replies stay in the ``Batch``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .._client import Mistral
from .._errors import APIError, MistralError
from .._reply import Reply
from .._request import chat_body
from ._backoff import AdaptiveLimit
from ._items import Items, Prompt, messages_for
from ._pools import Pools, shared_backoff_policy
from ._result import Batch, BatchError, ItemState
from ._resume import ReplyCache

ErrorMode = Literal["keep", "raise"]
MAX_THROTTLES = 50  # 429s in a row for one item before it is given up


@dataclass(frozen=True)
class LiveSettings:
    """What every item of a live batch shares."""

    prompt: Prompt
    model: str
    system: str | None
    options: Mapping[str, Any]
    concurrency: int = 8
    errors: ErrorMode = "keep"
    cache: ReplyCache | None = None


class LiveRunner:
    """Runs one ``Batch`` live; ``run`` is the whole job, to be run (and cancelled) as a task."""

    def __init__(self, batch: Batch, items: Items, client: Mistral, settings: LiveSettings):
        if settings.errors not in ("keep", "raise"):
            raise ValueError(f'errors must be "keep" or "raise", not {settings.errors!r}')
        self.batch = batch
        self.settings = settings
        self.limit: AdaptiveLimit | None = None
        self._client = client
        self._items = items
        self._source: Iterator[tuple[Hashable, Any]] = items.labelled()

    async def run(self) -> None:
        """Run every item; the batch is finished whatever ends this (a stop included)."""
        error: BaseException | None = None
        try:
            await self._run_all()
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._settle(error)

    async def _run_all(self) -> None:
        settings = self.settings
        limit = self.limit = AdaptiveLimit(
            max(1, settings.concurrency), on_pause=self.batch._paused
        )
        policy = shared_backoff_policy(
            self._client.retry_policy, limit.throttled, limit.wait_unpaused
        )
        pools = Pools.for_concurrency(self._client, limit.ceiling, policy)
        workers = [
            asyncio.ensure_future(self._worker(pools.for_worker(n), limit))
            for n in range(limit.ceiling)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await pools.aclose()

    async def _worker(self, client: Mistral, limit: AdaptiveLimit) -> None:
        settings = self.settings
        for label, item in self._source:
            try:
                messages = messages_for(settings.prompt, item, settings.system)
            except Exception as exc:  # the user's template or callable failed for this item
                self._failed(self.batch._add(label, Reply(settings.model)), exc)
                continue
            body = chat_body(settings.model, messages, True, settings.options)
            try:
                cached = settings.cache.lookup(body) if settings.cache is not None else None
            except Exception as exc:  # e.g. CacheMiss in "only" mode: this item fails
                self._failed(self.batch._add(label, Reply(settings.model, messages)), exc)
                continue
            if cached is not None and cached.done and cached.error is None:
                index = self.batch._add(label, cached)
                self.batch._count_replayed()
                self.batch._set_state(index, ItemState.DONE)
                continue
            reply = Reply(settings.model, messages)
            index = self.batch._add(label, reply)
            await self._run_item(client, limit, index, reply, messages)
            if settings.cache is not None and reply.error is None:
                settings.cache.record(body, reply)

    async def _run_item(
        self,
        client: Mistral,
        limit: AdaptiveLimit,
        index: int,
        reply: Reply,
        messages: list[dict[str, Any]],
    ) -> None:
        settings = self.settings
        for _ in range(MAX_THROTTLES + 1):
            async with limit:
                self.batch._set_state(index, ItemState.RUNNING)
                try:
                    async with client.chat.stream_async(
                        model=settings.model, messages=messages, **settings.options
                    ) as events:
                        async for event in events:
                            reply.add(event)
                except APIError as exc:
                    if exc.status_code == 429 and not reply.deltas:
                        self.batch._set_state(index, ItemState.PENDING)
                        continue  # the pause is already set: wait it out with everyone
                    self._failed(index, exc)
                    return
                except MistralError as exc:
                    self._failed(index, exc)
                    return
                except BaseException as exc:
                    reply.finish(exc)
                    self.batch._set_state(index, ItemState.STOPPED)
                    raise
                reply.finish()
                limit.succeeded()
                self.batch._set_state(index, ItemState.DONE)
                return
        self._failed(index, MistralError(f"still rate limited after {MAX_THROTTLES} waits"))

    def _failed(self, index: int, error: BaseException) -> None:
        self.batch[index].finish(error)
        self.batch._set_state(index, ItemState.FAILED)
        if self.settings.errors == "raise":
            raise BatchError(self.batch, index, error)

    def _settle(self, error: BaseException | None) -> None:
        """End the batch: a stopped sized input gets a stopped reply for every item not run."""
        batch = self.batch
        for index, reply in enumerate(list(batch)):
            if not reply.done:
                reply.finish(error or asyncio.CancelledError())
                batch._set_state(index, ItemState.STOPPED)
        if error is not None and self._items.total is not None:
            for label, _item in self._source:
                reply = Reply(self.settings.model)
                reply.finish(asyncio.CancelledError())
                batch._set_state(batch._add(label, reply), ItemState.STOPPED)
        batch._finish(error)
