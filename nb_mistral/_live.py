"""The live view: a reply shown while it streams, paced by ``PacedView`` (at most N front-end
updates a second, whatever the token rate, the first delta at once, the final state exact).

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

from ._pace import RENDER_SHARE, PacedView, Throttle
from ._render import ReplyRenderer
from ._reply import Reply

__all__ = ["FORMATS", "RENDER_SHARE", "LiveView", "Throttle"]

FORMATS = ("markdown", "text", "code")


class LiveView(PacedView):
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
        super().__init__(reply, max_updates_per_second=max_updates_per_second, clock=clock)
        self.fmt = fmt
        # in the foreground the error ends the cell with its own line: say it once, there
        self.renderer = ReplyRenderer(reply, show_error=background)
        self._handle: DisplayHandle | None = None
        self._stop_handle: DisplayHandle | None = None

    def bundle(self) -> dict[str, str]:
        """Sanitised HTML and the defanged raw Markdown; ``-f text``: the plain text only."""
        if self.fmt == "text":
            return {"text/plain": self.renderer.text()}
        return {"text/html": self.renderer.html(), "text/plain": self.renderer.text()}

    def start(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Show the (empty) reply. With a loop, throttled changes are flushed by a timer."""
        super().start(loop=loop)
        if self._handle is not None:
            return
        self._handle = display(self.bundle(), raw=True, display_id=True)
        self._shown_first()

    def show_stop_button(self, on_stop: Callable[[], Any]) -> Any:
        """A Stop button beside the reply (background mode); returns the widget."""
        import ipywidgets as widgets

        button = widgets.Button(
            description="Stop", icon="stop", button_style="warning", tooltip="Stop this reply"
        )
        button.on_click(lambda _button: on_stop())
        self._stop_handle = display(button, display_id=True)
        return button

    def _visible(self) -> bool:
        return self._handle is not None

    def _show(self) -> None:
        assert self._handle is not None
        self._handle.update(self.bundle(), raw=True)

    def finish(self) -> None:
        """Show the final state exactly, and take the Stop button away."""
        super().finish()
        if self._stop_handle is not None:
            self._stop_handle.update({"text/plain": ""}, raw=True)
            self._stop_handle = None
