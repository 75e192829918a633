"""One progress display per batch: an ipywidgets bar in a notebook, a text line elsewhere.

It shows only numbers the batch counted (done / failed / running, tokens, tokens per second,
ETA) and the model name escaped, never model or server text. Whoever runs the batch calls
``update`` at most ``MAX_UPDATES_PER_SECOND`` times a second and ``finish`` once.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from .._render import plain
from ._result import Batch

MAX_UPDATES_PER_SECOND = 10
INTERVAL = 1.0 / MAX_UPDATES_PER_SECOND
TEXT_LINE_EVERY = 5.0  # seconds between lines when the text goes to a file, not a terminal


class ProgressView(Protocol):
    def update(self) -> None: ...
    def finish(self) -> None: ...


class Tracked(Protocol):
    """What a progress display reads: a live batch, or a Batch API job."""

    @property
    def label(self) -> str: ...
    @property
    def total(self) -> int | None: ...
    @property
    def ended(self) -> int: ...
    @property
    def failed(self) -> int: ...
    def line(self, elapsed: float) -> str: ...


class BatchProgress:
    """A live ``Batch`` as a ``Tracked``."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch

    @property
    def label(self) -> str:
        return self._batch.model

    @property
    def total(self) -> int | None:
        return self._batch.total if self._batch.total is not None else max(1, len(self._batch))

    @property
    def ended(self) -> int:
        batch = self._batch
        return batch.finished + batch.failed + batch.stopped

    @property
    def failed(self) -> int:
        return self._batch.failed

    def line(self, elapsed: float) -> str:
        return summary(self._batch, elapsed)


def summary(batch: Batch, elapsed: float) -> str:
    """``12/100 done · 1 failed · 8 running · 3,456 tokens · 250 tok/s · ETA 0:41``."""
    ended = batch.finished + batch.failed + batch.stopped
    total = batch.total
    parts = [f"{batch.finished}/{total}" if total is not None else f"{batch.finished}"]
    parts[0] += " done"
    parts.append(f"{batch.failed} failed")
    if batch.stopped:
        parts.append(f"{batch.stopped} stopped")
    parts.append(f"{batch.running} running")
    tokens = batch.tokens
    parts.append(f"{tokens:,} tokens")
    if elapsed > 0:
        parts.append(f"{tokens / elapsed:,.0f} tok/s")
    if total is not None and 0 < ended < total and not batch.done and elapsed > 0:
        left = elapsed / ended * (total - ended)
        parts.append(f"ETA {int(left // 60)}:{int(left % 60):02d}")
    return " · ".join(parts)


class TextProgress:
    """A line on stderr: rewritten in place on a terminal, a new line now and then in a log."""

    def __init__(self, tracked: Tracked, stream: TextIO | None = None) -> None:
        self._tracked = tracked
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._started = time.monotonic()
        self._last_line = 0.0

    def update(self) -> None:
        now = time.monotonic()
        if self._tty:
            self._stream.write("\r" + self._tracked.line(now - self._started) + "\x1b[K")
            self._stream.flush()
        elif now - self._last_line >= TEXT_LINE_EVERY:
            self._last_line = now
            self._stream.write(self._tracked.line(now - self._started) + "\n")

    def finish(self) -> None:
        line = self._tracked.line(time.monotonic() - self._started)
        self._stream.write(("\r" + line + "\x1b[K\n") if self._tty else line + "\n")
        self._stream.flush()


class WidgetProgress:
    """An ipywidgets bar with the counts beside it, and a Stop button while it runs."""

    def __init__(self, tracked: Tracked, *, on_stop: Callable[[], Any] | None = None) -> None:
        import ipywidgets as widgets
        from IPython.display import display as ipython_display

        display: Callable[..., Any] = ipython_display
        self._tracked = tracked
        self._started = time.monotonic()
        # shown first empty (a saved notebook's text/plain of it does not depend on timing)
        self._bar = widgets.IntProgress(
            value=0, min=0, max=1, description=html.escape(tracked.label)[:20]
        )
        self._label = widgets.Label(value="")  # a Label shows text, never markup
        children: list[Any] = [self._bar, self._label]
        self._stop: Any = None
        if on_stop is not None:
            self._stop = widgets.Button(description="Stop", icon="stop", button_style="warning")
            self._stop.on_click(lambda _button: on_stop())
            children.append(self._stop)
        self._box = widgets.HBox(children)
        # beside the widget, a line of counts: what a saved notebook shows without widget
        # state (counts only, so it does not depend on timing)
        self._handle = display(self._bundle(), raw=True, display_id=True)
        self.update()

    def _bundle(self) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(self._box._repr_mimebundle_() or {})
        tracked = self._tracked
        total = tracked.total if tracked.total is not None else "?"
        bundle["text/plain"] = plain(
            f"{tracked.label}: {tracked.ended} of {total} finished ({tracked.failed} failed)"
        )
        return bundle

    def update(self) -> None:
        tracked = self._tracked
        self._bar.max = max(1, tracked.total or 1)
        self._bar.value = tracked.ended
        self._bar.bar_style = "danger" if tracked.failed else ""
        self._label.value = tracked.line(time.monotonic() - self._started)

    def finish(self) -> None:
        self.update()
        self._bar.bar_style = "danger" if self._tracked.failed else "success"
        if self._stop is not None:
            self._stop.close()
            self._stop = None
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)


def progress_view(
    tracked: Tracked | Batch, enabled: bool, *, on_stop: Callable[[], Any] | None = None
) -> ProgressView | None:
    """The widget in a kernel, a text line elsewhere, or nothing when turned off."""
    if not enabled:
        return None
    if isinstance(tracked, Batch):
        tracked = BatchProgress(tracked)
    if _in_kernel():
        return WidgetProgress(tracked, on_stop=on_stop)
    return TextProgress(tracked)


def _in_kernel() -> bool:
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
