"""One backoff for all the workers of a batch, and the number of them allowed in flight.

A 429 means the account is over its limit, not that one request was unlucky: so it pauses every
worker until its ``Retry-After`` has passed (N workers retrying on their own would hammer the
server N times over), and halves how many requests may be in flight; each success then adds
back a little (additive increase, multiplicative decrease, as TCP does). Everything here runs on
one event loop, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

DEFAULT_PAUSE = 1.0  # a 429 without a usable Retry-After


class AdaptiveLimit:
    """At most ``limit`` holders at once (``async with limit:``); no new holder during a pause.

    ``throttled(seconds)`` pauses everyone and halves the limit (once per pause, however many
    429s arrive together); each ``succeeded()`` grows it by ``1 / limit``, so a full round of
    successes at the current limit adds one, up to the ceiling.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_pause: Callable[[float, float], None] = lambda start, until: None,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.in_flight = 0
        self._on_pause = on_pause  # told (from, until) on ``clock`` at each 429
        self._clock = clock
        self._paused_until = 0.0
        self._changed = asyncio.Condition()

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    async def acquire(self) -> None:
        async with self._changed:
            while True:
                pause = self.paused_for
                if pause > 0:
                    await self._sleep_or_change(pause)
                elif self.in_flight >= int(self.limit):
                    await self._changed.wait()
                else:
                    self.in_flight += 1
                    return

    async def _sleep_or_change(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    def throttled(self, retry_after: float | None) -> None:
        """A 429 arrived: pause everyone until ``retry_after`` seconds from now."""
        now = self._clock()
        seconds = retry_after if retry_after is not None and retry_after > 0 else DEFAULT_PAUSE
        if self._paused_until <= now:  # a new pause: halve once
            self.limit = max(1.0, self.limit / 2)
        until = max(self._paused_until, now + seconds)
        self._paused_until = until
        self._on_pause(now, until)

    def succeeded(self) -> None:
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)

    async def wait_unpaused(self) -> None:
        """Sleep out a pause (the client's own retries of a 5xx wait here too)."""
        while (pause := self.paused_for) > 0:
            await asyncio.sleep(pause)
