"""The turns of ``ChatWidget``'s transcript: a user's message, the assistant's reply as a paced
view that ``drive_async`` refreshes, and the whole transcript as static HTML for a saved
notebook. Every body comes from the one renderer; only the frames are ours."""

from __future__ import annotations

import html
import time
from collections.abc import Callable

import ipywidgets as widgets

from ._pace import PacedView
from ._render import ReplyRenderer, displayable, render_markdown, wrap
from ._render._chat import (
    chat_transcript_html,
    message_html,
    thinking_panel_html,
)
from ._reply import Reply


def user_message(text: str) -> widgets.HTML:
    body = wrap(render_markdown(displayable(text)))
    return widgets.HTML(message_html("You", body, user=True))


def close_tree(widget: widgets.Widget) -> None:
    """Close a widget and the widgets inside it, so the front end can forget them."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


class ReplyMessage(PacedView):
    """The assistant's turn in the transcript: the view that ``drive_async`` refreshes.

    Answer and status line are one ``HTML`` widget; reasoning goes into an ``Accordion``
    created when the first thinking arrives (open while it is all there is, closed once the
    answer starts, as the live view does), so a user who opens it is not overruled by updates.
    """

    def __init__(
        self,
        reply: Reply,
        *,
        max_updates_per_second: float = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(reply, max_updates_per_second=max_updates_per_second, clock=clock)
        # no cell error here: the message shows it; an HTML widget is not typeset: math as code
        self.renderer = ReplyRenderer(reply, typeset_math=False)
        self.settled = False
        self.closed = False
        self.generation = 0
        self._shown_thinking = (0, False)
        self._auto_opened = False
        self._thinking_html: widgets.HTML | None = None
        self.thinking: widgets.Accordion | None = None
        self.body = widgets.HTML(self._body_html())
        self.widget = widgets.VBox([self.body])
        self._shown_first()

    # -- rendering -------------------------------------------------------------------------

    def _body_html(self) -> str:
        body = wrap(self.renderer.body_html(thinking=False, status=False))
        return message_html("Assistant", body, self.renderer.status_html())

    def _visible(self) -> bool:
        return not self.closed

    def _show(self) -> None:
        reply = self.reply
        thinking = reply.raw_thinking
        shown = (len(thinking), reply.done)  # the final state is rendered afresh, once
        if thinking and shown != self._shown_thinking:
            self._shown_thinking = shown
            self._show_thinking()
        if self.thinking is not None and self._auto_opened and (reply.text or reply.done):
            self._auto_opened = False
            self.thinking.selected_index = None
        self.body.value = self._body_html()

    def _show_thinking(self) -> None:
        value = thinking_panel_html(wrap(self.renderer.thinking_html()))
        if self._thinking_html is None or self.thinking is None:
            self._thinking_html = widgets.HTML(value)
            self.thinking = widgets.Accordion(
                children=[self._thinking_html], titles=("Thinking",), selected_index=None
            )
            if not self.reply.text and not self.reply.done:
                self._auto_opened = True
                self.thinking.selected_index = 0
            self.widget.children = (self.thinking, self.body)
        else:
            self._thinking_html.value = value


def transcript_html(transcript: widgets.Widget, model: str) -> str:
    """The conversation as static HTML: the messages' values (each rendered and sanitised
    already) in our own frame, the reasoning panels as ``<details>``."""
    parts = [_static_html(child) for child in getattr(transcript, "children", ())]
    return chat_transcript_html(html.escape(model), "".join(parts))


def _static_html(widget: widgets.Widget) -> str:
    if isinstance(widget, widgets.Accordion):
        inner = "".join(_static_html(child) for child in widget.children)
        return f"<details><summary>Thinking</summary>{inner}</details>"
    if isinstance(widget, widgets.HTML):
        return str(widget.value)
    return "".join(_static_html(child) for child in getattr(widget, "children", ()))
