"""The refresh loop of the live view: at most N front-end updates a second, whatever the token
rate, the first delta at once, and the final state always exact.

The reply is one ``display_id`` output updated in place: sanitised ``text/html`` plus the raw
Markdown as (defanged) ``text/plain``, so a saved notebook shows the answer without widget state
and nothing from the model reaches the front end as Markdown for it to parse its own way. In
background mode a Stop button sits beside it; it is swapped for nothing when the stream ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from IPython.display import DisplayHandle, display

from ._render import ReplyRenderer
from ._reply import Reply

FORMATS = ("markdown", "text", "code")
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


class LiveView:
    """Shows a ``Reply`` while it fills: ``refresh`` after each event, ``finish`` at the end."""

    def __init__(
        self,
        reply: Reply,
        *,
        fmt: str = "markdown",
        max_updates_per_second: float = 20,
        clock: Callable[[], float] = time.monotonic,
        background: bool = False,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.reply = reply
        self.fmt = fmt
        # in the foreground the error ends the cell with its own line: say it once, there
        self.renderer = ReplyRenderer(reply, show_error=background)
        self.updates = 0  # front-end messages sent, the first display included
        self._handle: DisplayHandle | None = None
        self._shown_deltas = 0
        self._throttle = Throttle(
            self._push,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            pending=lambda: self.reply.deltas != self._shown_deltas,
        )
        self.interval = self._throttle.interval
        self._stop_handle: DisplayHandle | None = None
        self._finished = False

    def bundle(self) -> dict[str, str]:
        """Sanitised HTML and the defanged raw Markdown; ``-f text``: the plain text only."""
        if self.fmt == "text":
            return {"text/plain": self.renderer.text()}
        return {"text/html": self.renderer.html(), "text/plain": self.renderer.text()}

    def start(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Show the (empty) reply. With a loop, throttled changes are flushed by a timer."""
        self._throttle.loop = loop
        if self._handle is not None:
            return
        self._handle = display(self.bundle(), raw=True, display_id=True)
        self._throttle.pushed()
        self.updates += 1

    def show_stop_button(self, on_stop: Callable[[], Any]) -> Any:
        """A Stop button beside the reply (background mode); returns the widget."""
        import ipywidgets as widgets

        button = widgets.Button(
            description="Stop", icon="stop", button_style="warning", tooltip="Stop this reply"
        )
        button.on_click(lambda _button: on_stop())
        self._stop_handle = display(button, display_id=True)
        return button

    def refresh(self) -> None:
        """The reply changed: update now if the budget allows, else soon."""
        if self._finished or self._handle is None:
            return
        first = self._shown_deltas == 0 and self.reply.deltas > 0
        self._throttle.changed(urgent=first)

    def _push(self) -> None:
        assert self._handle is not None
        self._shown_deltas = self.reply.deltas
        self._handle.update(self.bundle(), raw=True)
        self.updates += 1

    def finish(self) -> None:
        """Show the final state exactly, and take the Stop button away."""
        if self._finished:
            return
        self._finished = True
        self._throttle.close(flush=self._handle is not None)
        if self._stop_handle is not None:
            self._stop_handle.update({"text/plain": ""}, raw=True)
            self._stop_handle = None
