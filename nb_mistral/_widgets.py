"""``ChatWidget``: a streaming chat in ipywidgets, on the kernel's event loop.

Every message is HTML from the one renderer of ``nb_mistral._render``: Markdown rendered in the
kernel and sanitised by an allowlist before it becomes a widget value. ipywidgets' ``HTML``
widget puts its value into the page as-is, which is why no model text may reach it any other
way. Images become links, so a reply cannot make the browser fetch a URL (a known way to leak a
conversation).

A reply streams as a task on the kernel's loop through ``drive_async``, the same driver as
``%%mistral --bg``; its message is a ``PacedView``, as the live view is, so the widget
sends at most ``max_updates_per_second`` updates a second whatever the token rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import ipywidgets as widgets

from ._api import DEFAULT_MODEL, build_messages, default_client
from ._client import Mistral
from ._pace import PacedView
from ._render import ReplyRenderer, displayable, render_markdown, text_html, wrap
from ._render._chat import message_html, notice_html, thinking_panel_html
from ._reply import Reply
from ._run import drive_async, kernel_loop

__all__ = ["ChatWidget"]

_NOT_CHAT_MODELS = ("embed", "moderation")


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _user_message(text: str) -> widgets.HTML:
    body = wrap(render_markdown(displayable(text)))
    return widgets.HTML(message_html("You", body, user=True))


def _close_tree(widget: widgets.Widget) -> None:
    """Close a widget and the widgets inside it, so the front end can forget them."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


class _ReplyMessage(PacedView):
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


class ChatWidget(widgets.VBox):
    """A chat with a Mistral model: transcript, input, Send / Stop / Clear, model choice.

    Enter in the input (a one-line ``Text``) or **Send** sends; the reply streams as a task on
    the kernel's event loop, so the notebook stays usable. Each request carries the whole
    conversation, the system prompt first. ``send``, ``stop`` and ``clear`` do from code what
    the buttons do; ``messages`` is the conversation and ``last_reply`` the latest ``Reply``.
    Extra keyword arguments (``temperature``, ``max_tokens``, ...) go into every request.
    """

    def __init__(
        self,
        model: str | None = None,
        system: str | None = None,
        *,
        client: Mistral | None = None,
        max_updates_per_second: float = 20,
        **options: Any,
    ) -> None:
        default = model or DEFAULT_MODEL
        model_dropdown = widgets.Dropdown(
            options=[default],
            value=default,
            description="Model",
            layout=widgets.Layout(width="360px", max_width="100%"),
        )
        transcript = widgets.VBox(layout=widgets.Layout(width="100%"))
        notice = widgets.HTML("")
        text = widgets.Text(
            placeholder="Message (Enter to send)",
            continuous_update=True,
            layout=widgets.Layout(flex="1 1 auto", width="auto"),
        )
        send_button = widgets.Button(
            description="Send", icon="paper-plane", button_style="primary", tooltip="Send"
        )
        stop_button = widgets.Button(
            description="Stop",
            icon="stop",
            button_style="warning",
            tooltip="Stop the reply",
            disabled=True,
        )
        clear_button = widgets.Button(
            description="Clear", icon="trash", tooltip="Forget the conversation"
        )
        controls = widgets.HBox(
            [text, send_button, stop_button, clear_button],
            layout=widgets.Layout(width="100%"),
        )
        super().__init__(
            [model_dropdown, transcript, notice, controls],
            layout=widgets.Layout(width="100%"),
        )
        self.add_class("nb-mistral-chat")
        self.model_dropdown = model_dropdown
        self.transcript = transcript
        self.notice = notice
        self.input = text
        self.send_button = send_button
        self.stop_button = stop_button
        self.clear_button = clear_button
        self.controls = controls
        self.client = client
        self.system = system
        self.options = dict(options)
        self.max_updates_per_second = max_updates_per_second
        self.models_error: BaseException | None = None
        self.models_task: asyncio.Task[None] | None = None
        self._default_model = default
        self._history: list[dict[str, Any]] = []
        self._generation = 0
        self._reply: Reply | None = None
        self._message: _ReplyMessage | None = None
        self._task: asyncio.Task[None] | None = None

        send_button.on_click(lambda _button: self._on_send())
        stop_button.on_click(lambda _button: self.stop())
        clear_button.on_click(lambda _button: self.clear())
        with warnings.catch_warnings():
            # Enter in a Text: ipywidgets 8 still sends the 'submit' event and has no other
            # way to tell Enter from typing (observing `value` would also send on blur)
            warnings.simplefilter("ignore", DeprecationWarning)
            text.on_submit(lambda _text: self._on_send())
        self.refresh_models()

    # -- state -----------------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model the next request uses (the dropdown's choice)."""
        return str(self.model_dropdown.value or self._default_model)

    @model.setter
    def model(self, value: str) -> None:
        if value not in self.model_dropdown.options:
            self.model_dropdown.options = [value, *self.model_dropdown.options]
        self.model_dropdown.value = value

    @property
    def streaming(self) -> bool:
        """A reply is streaming (Send is disabled, Stop enabled)."""
        return self._task is not None

    @property
    def last_reply(self) -> Reply | None:
        """The latest reply (streaming, finished, stopped or failed), until ``clear``."""
        return self._reply

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as dicts: the system prompt first if given, then the turns (the
        one streaming included, with the text so far). A turn that failed before any answer
        arrived is shown but not kept in the conversation."""
        if self._reply is not None and self._message is not None and not self._message.settled:
            return [dict(m) for m in self._reply.messages]
        if self._history:
            return [dict(m) for m in self._history]
        return [{"role": "system", "content": self.system}] if self.system else []

    # -- actions ---------------------------------------------------------------------------

    def send(self, text: str | None = None) -> Reply:  # type: ignore[override]
        """Send ``text`` (default: the input box, which is then emptied) and stream the reply
        as a task on the kernel's loop. Returns the ``Reply`` at once: ``await`` it to wait.

        This replaces ``Widget.send`` (custom comm messages), which a chat does not use."""
        from_input = text is None
        if text is None:
            text = self.input.value
        if not text.strip():
            raise ValueError("nothing to send: the message is empty")
        if self.streaming:
            raise RuntimeError("a reply is still streaming: stop it first")
        loop = kernel_loop()
        client = self.client or default_client()
        model = self.model
        messages = build_messages(text, system=self.system, history=self._history)
        reply = Reply(model, messages)
        message = _ReplyMessage(reply, max_updates_per_second=self.max_updates_per_second)
        message.generation = self._generation
        if from_input:
            self.input.value = ""
        self.notice.value = ""
        self.transcript.children = (*self.transcript.children, _user_message(text), message.widget)
        self._reply, self._message = reply, message
        message.start(loop=loop)
        options = dict(self.options)

        def open_stream() -> Any:
            return client.chat.stream_async(model=model, messages=messages, **options)

        task = loop.create_task(self._stream(open_stream, reply, message))
        self._task = task
        reply._task = task
        # a task cancelled before it began never runs its body: settle it from outside too
        task.add_done_callback(lambda _task: self._settle(reply, message, task))
        self._show_streaming(True)
        return reply

    def stop(self) -> None:
        """Stop the streaming reply: the connection closes, the partial text stays."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            self.stop_button.disabled = True

    def clear(self) -> None:
        """Stop any reply and forget the conversation: an empty transcript, a new chat."""
        self.stop()
        if self._task is not None:  # the stopped task settles later; a new chat can start now
            self._task = None
            self._show_streaming(False)
        self._generation += 1
        self._history = []
        self._reply = None
        if self._message is not None:
            self._message.closed = True
        self._message = None
        old = self.transcript.children
        self.transcript.children = ()
        for child in old:
            _close_tree(child)
        self.notice.value = ""

    def refresh_models(self) -> asyncio.Task[None] | None:
        """Fill the model choice from the server's ``/v1/models`` as a task on the running
        loop (the kernel's), so construction never waits for the network. Without a running
        loop, or when the listing fails, the configured model stays the only choice."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            try:
                loop = kernel_loop()
            except RuntimeError:
                return None
        self.models_task = loop.create_task(self._load_models())
        return self.models_task

    def close(self) -> None:
        """Stop any reply and close this widget and the widgets it made."""
        with contextlib.suppress(Exception):
            self.stop()
            if self.models_task is not None:
                self.models_task.cancel()
            for child in self.children:
                _close_tree(child)
        super().close()

    def __repr__(self) -> str:
        # short: ipywidgets would list every child's state, and this is the text/plain
        # fallback a saved notebook shows where widgets do not render
        turns = sum(1 for m in self.messages if m.get("role") == "user")
        state = " streaming" if self.streaming else ""
        return f"<ChatWidget {self.model} ({turns} turns{state})>"

    def focus(self) -> None:
        """Focus the input box (``DOMWidget.focus`` goes through ``send``, replaced here)."""
        self.input.focus()

    def blur(self) -> None:
        self.input.blur()

    # -- internals -------------------------------------------------------------------------

    def _on_send(self) -> None:
        """Send / Enter: ignored while a reply streams or when the input is empty; a failure
        to start shows as one line under the transcript."""
        if self.streaming or not self.input.value.strip():
            return
        try:
            self.send()
        except Exception as exc:
            self._show_notice(f"{type(exc).__name__}: {exc}")

    def _show_notice(self, text: str) -> None:
        self.notice.value = notice_html(text_html(_one_line(text)))

    def _show_streaming(self, streaming: bool) -> None:
        self.send_button.disabled = streaming
        self.stop_button.disabled = not streaming

    async def _stream(
        self, open_stream: Callable[[], Any], reply: Reply, message: _ReplyMessage
    ) -> None:
        try:
            await drive_async(open_stream, reply, message)
        except (Exception, asyncio.CancelledError, KeyboardInterrupt):
            pass  # the reply holds the error (or the stop) and its message shows it
        finally:
            self._settle(reply, message, asyncio.current_task())

    def _settle(self, reply: Reply, message: _ReplyMessage, task: Any) -> None:
        """Once per reply, however it ended: final render, conversation, buttons."""
        if message.settled:
            return
        message.settled = True
        if not reply.done:
            reply.finish(asyncio.CancelledError())
        message.finish()
        answered = bool(reply.text or reply.tool_calls)
        if answered and message.generation == self._generation:
            self._history = reply.messages
        if self._task is task:
            self._task = None
            self._show_streaming(False)

    async def _load_models(self) -> None:
        try:
            client = self.client or default_client()
            listing = await client.models.list_async()
            ids = _chat_model_ids(card.id for card in listing.data)
        except Exception as exc:
            self.models_error = exc
            self.model_dropdown.tooltip = _one_line(
                f"Could not list the server's models ({type(exc).__name__}: {exc})"
            )
            return
        if not ids:
            return
        current = self.model
        self.models_error = None
        self.model_dropdown.tooltip = None
        self.model_dropdown.options = ids if current in ids else [current, *ids]
        self.model_dropdown.value = current


def _chat_model_ids(ids: Iterable[str]) -> list[str]:
    """The server's models a chat can use, sorted, without embedding or moderation models."""
    found = {i for i in ids if i and not any(word in i for word in _NOT_CHAT_MODELS)}
    return sorted(found)
