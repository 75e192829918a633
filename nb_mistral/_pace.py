"""Pacing the updates of a view of a growing reply: the first delta at once, then at most N
front-end updates a second whatever the token rate, never more than a share of the kernel's
time, and the final state always exactly. No IPython here: the live view (a display) and the
chat widget's message (an ipywidget) both build on ``PacedView``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ._reply import Reply

RENDER_SHARE = 0.2  # at most this share of the kernel's time goes to pushing updates


class Throttle:
    """At most one front-end update per interval, whatever the rate of changes: a change goes
    out at once when the budget allows (or when ``urgent``), else a timer on the loop sends the
    latest state as soon as it does; ``close`` sends the final state at once. Shared by the
    live view and the chat widget, so both pace their updates the same way."""

    def __init__(
        self,
        push: Callable[[], Any],
        *,
        max_updates_per_second: float = 20,
        clock: Callable[[], float] = time.monotonic,
        pending: Callable[[], bool] | None = None,
    ) -> None:
        self.interval = 1.0 / max_updates_per_second if max_updates_per_second > 0 else 0.0
        self.loop: asyncio.AbstractEventLoop | None = None  # without one, no delayed updates
        self.closed = False
        self._push = push
        self._clock = clock
        self._pending = pending  # whether the timer has anything new to send (default: a change)
        self._dirty = False
        self._last = float("-inf")
        self._cost = 0.0  # how long the last push took (rendering a long reply is slow)
        self._timer: asyncio.TimerHandle | None = None

    def pushed(self) -> None:
        """An update just went out by other means (the first display): count it."""
        self._last = self._clock()

    def changed(self, *, urgent: bool = False) -> None:
        """Something changed: push now if the budget allows (or ``urgent``), else soon."""
        if self.closed:
            return
        self._dirty = True
        now = self._clock()
        # space the pushes so that they never take more than RENDER_SHARE of the time, or a
        # long reply re-rendered 20 times a second would leave the kernel no time for cells
        interval = max(self.interval, self._cost / RENDER_SHARE)
        if urgent or now - self._last >= interval:
            self._fire(now)
        elif self.loop is not None and self._timer is None:
            self._timer = self.loop.call_at(
                self.loop.time() + (self._last + interval - now), self._on_timer
            )

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        if self._pending() if self._pending is not None else self._dirty:
            self._fire(self._clock())

    def _fire(self, now: float) -> None:
        if self._timer is not None:  # set for an earlier budget; it would come too soon now
            self._timer.cancel()
            self._timer = None
        self._last = now
        self._dirty = False
        self._push()
        self._cost = self._clock() - now

    def close(self, *, flush: bool = True) -> None:
        """No more changes: cancel the timer and (with ``flush``) push the final state now."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if flush:
            self._fire(self._clock())


class PacedView:
    """A view of a ``Reply`` whose updates a ``Throttle`` paces: ``start``, ``refresh`` after
    each event, ``finish`` at the end. Subclasses ``_show`` the reply; ``_visible`` says
    whether there is anything to update (a display made, a message not yet closed)."""

    def __init__(
        self,
        reply: Reply,
        *,
        max_updates_per_second: float = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reply = reply
        self.updates = 0  # front-end updates sent, the first display included
        self._shown_deltas = 0
        self._finished = False
        self._throttle = Throttle(
            self._push,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            pending=lambda: self.reply.deltas != self._shown_deltas,
        )
        self.interval = self._throttle.interval

    def _visible(self) -> bool:
        return True

    def _show(self) -> None:
        raise NotImplementedError

    def _shown_first(self) -> None:
        """The first state went out by other means (a display, a widget's value): count it."""
        self._throttle.pushed()
        self.updates += 1

    def start(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """With a loop, changes the throttle held back are flushed by a timer."""
        self._throttle.loop = loop

    def refresh(self) -> None:
        """The reply changed: update now if the budget allows (the first delta always), else
        soon."""
        if self._finished or not self._visible():
            return
        first = self._shown_deltas == 0 and self.reply.deltas > 0
        self._throttle.changed(urgent=first)

    def finish(self) -> None:
        """Show the final state exactly, once."""
        if self._finished:
            return
        self._finished = True
        self._throttle.close(flush=self._visible())

    def _push(self) -> None:
        if not self._visible():
            return
        self._shown_deltas = self.reply.deltas
        self._show()
        self.updates += 1
