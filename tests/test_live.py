"""The notebook layer without a kernel: LiveView's throttle, Reply, rendering, interpolation and
the drivers, with a fake clock and a fake ``display``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from html_allowlist import violations

from nb_mistral import _live
from nb_mistral._interpolate import interpolate
from nb_mistral._live import LiveView
from nb_mistral._models import CompletionEvent
from nb_mistral._render import ReplyRenderer, code_of, status_line
from nb_mistral._render._view import STYLE
from nb_mistral._reply import Reply
from nb_mistral._run import drive, drive_async, start_background

# -- fakes --------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeHandle:
    def __init__(self, screen: FakeScreen, obj: Any) -> None:
        self.screen = screen
        self.shown: list[Any] = [obj]

    def update(self, obj: Any, **_kwargs: Any) -> None:
        self.shown.append(obj)
        self.screen.messages += 1
        if self.screen.clock is not None:  # a slow front-end update (a long reply)
            self.screen.update_times.append(self.screen.clock.now)
            self.screen.clock.advance(self.screen.cost)


class FakeScreen:
    """Stands in for IPython's ``display``: records displays and their updates."""

    def __init__(self) -> None:
        self.handles: list[FakeHandle] = []
        self.messages = 0
        self.clock: FakeClock | None = None
        self.cost = 0.0
        self.update_times: list[float] = []

    def display(self, obj: Any, *, display_id: Any = None, **_kwargs: Any) -> FakeHandle:
        handle = FakeHandle(self, obj)
        self.handles.append(handle)
        self.messages += 1
        return handle

    @property
    def reply(self) -> FakeHandle:
        return self.handles[0]


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> FakeScreen:
    fake = FakeScreen()
    monkeypatch.setattr(_live, "display", fake.display)
    return fake


def chunk(content: Any = None, *, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    delta.update(extra.pop("delta", {}))
    return {
        "data": {
            "id": "c1",
            "model": "mistral-small-latest",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    }


def words(n: int) -> list[str]:
    return [f"w{i} " for i in range(n)]


# -- LiveView -----------------------------------------------------------------------------------


def test_first_delta_is_shown_at_once(screen: FakeScreen) -> None:
    clock = FakeClock()
    reply = Reply("m")
    view = LiveView(reply, clock=clock)
    view.start()
    assert screen.messages == 1
    reply.add(chunk("Hello"))
    view.refresh()  # no time has passed, but the first delta is shown at once
    assert screen.messages == 2
    assert "Hello" in screen.reply.shown[-1]["text/html"]


def test_updates_are_throttled_whatever_the_token_rate(screen: FakeScreen) -> None:
    clock = FakeClock()
    reply = Reply("m")
    view = LiveView(reply, clock=clock, max_updates_per_second=20)
    view.start()
    for token in words(10_000):  # 10,000 deltas in one second of (fake) time
        reply.add(chunk(token))
        view.refresh()
        clock.advance(1e-4)
    view.finish()
    # the first display, the first delta, ~20 throttled updates, the final state
    assert screen.messages <= 24
    assert view.updates == screen.messages
    assert "w9999" in screen.reply.shown[-1]["text/html"]


def test_update_times_respect_the_interval(screen: FakeScreen) -> None:
    clock = FakeClock()
    times: list[float] = []
    reply = Reply("m")
    view = LiveView(reply, clock=clock, max_updates_per_second=10)
    view.start()
    original = FakeHandle.update

    def timed(self: FakeHandle, obj: Any, **kw: Any) -> None:
        times.append(clock.now)
        original(self, obj, **kw)

    FakeHandle.update = timed  # type: ignore[method-assign]
    try:
        for token in words(500):
            reply.add(chunk(token))
            view.refresh()
            clock.advance(0.01)  # 100 deltas a second for 5 s
    finally:
        FakeHandle.update = original  # type: ignore[method-assign]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.1 - 1e-9 for gap in gaps), gaps
    assert 45 <= len(times) <= 52


def test_slow_renders_are_spaced_out_to_keep_the_kernel_free(screen: FakeScreen) -> None:
    clock = FakeClock()
    screen.clock, screen.cost = clock, 0.1  # each update takes 100 ms to render and send
    reply = Reply("m")
    view = LiveView(reply, clock=clock, max_updates_per_second=20)
    view.start()
    start = clock.now
    for token in words(1000):  # a delta every 10 ms for 10 s (plus render time)
        reply.add(chunk(token))
        view.refresh()
        clock.advance(0.01)
    busy = screen.cost * len(screen.update_times)
    assert busy / (clock.now - start) <= 0.2 + 0.02  # rendering takes at most ~20% of the time
    gaps = [b - a for a, b in itertools.pairwise(screen.update_times)]
    assert all(gap >= 0.5 - 1e-9 for gap in gaps), gaps
    assert len(screen.update_times) >= 10  # still live


def test_final_state_is_exact_even_when_throttled(screen: FakeScreen) -> None:
    clock = FakeClock()
    reply = Reply("m")
    view = LiveView(reply, clock=clock)
    view.start()
    tokens = words(50)
    for token in tokens:
        reply.add(chunk(token))
        view.refresh()  # the clock never moves: only the first delta is shown
    assert screen.messages == 2
    reply.add(chunk("", finish="stop"))
    reply.finish()
    view.finish()
    final = screen.reply.shown[-1]
    assert reply.text == "".join(tokens)
    assert "".join(tokens).strip() in final["text/html"]
    assert final["text/plain"].startswith(reply.text)
    view.refresh()
    view.finish()
    assert screen.messages == 3  # nothing after the end


def test_a_timer_flushes_what_the_throttle_held_back(screen: FakeScreen) -> None:
    async def main() -> None:
        reply = Reply("m")
        view = LiveView(reply, max_updates_per_second=20)
        view.start(loop=asyncio.get_running_loop())
        reply.add(chunk("one "))
        view.refresh()
        reply.add(chunk("two "))
        view.refresh()  # within 50 ms of the last update: held back, timer set
        assert screen.messages == 2
        deadline = time.monotonic() + 2
        while screen.messages < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert screen.messages == 3
        assert "two" in screen.reply.shown[-1]["text/html"]
        view.finish()

    asyncio.run(main())


def test_text_format_is_plain(screen: FakeScreen) -> None:
    reply = Reply("m")
    view = LiveView(reply, fmt="text")
    view.start()
    reply.add(chunk("<b>plain</b>"))
    view.refresh()
    reply.finish()
    view.finish()
    assert all(set(shown) == {"text/plain"} for shown in screen.reply.shown)
    assert screen.reply.shown[-1]["text/plain"].startswith("<b>plain</b>")


def test_bad_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        LiveView(Reply("m"), fmt="html")


def test_stop_button_calls_back_and_goes_away(screen: FakeScreen) -> None:
    stopped: list[bool] = []
    reply = Reply("m")
    view = LiveView(reply)
    view.start()
    button = view.show_stop_button(lambda: stopped.append(True))
    button.click()
    assert stopped == [True]
    stop_handle = screen.handles[1]
    reply.finish()
    view.finish()
    assert stop_handle.shown[-1] == {"text/plain": ""}


# -- Reply --------------------------------------------------------------------------------------


def test_reply_collects_text_thinking_usage_and_finish() -> None:
    reply = Reply("m", [{"role": "user", "content": "hi"}])
    reply.add(CompletionEvent.model_validate(chunk("", delta={"role": "assistant"})))
    reply.add(
        CompletionEvent.model_validate(
            chunk([{"type": "thinking", "thinking": [{"type": "text", "text": "hmm "}]}])
        )
    )
    reply.add(CompletionEvent.model_validate(chunk([{"type": "text", "text": "Hel"}])))
    reply.add(chunk("lo"))  # a plain dict works as well
    reply.add(
        chunk(
            "",
            finish="length",
            usage={"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
        )
    )
    reply.finish()
    assert (reply.text, reply.thinking, str(reply)) == ("Hello", "hmm ", "Hello")
    assert reply.finish_reason == "length"
    assert reply.tokens == 3 and reply.deltas == 3
    assert reply.done and reply.error is None and reply.id == "c1"
    assert reply.messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert "Hello" in repr(reply)


def test_a_reply_that_brought_nothing_adds_no_empty_assistant_turn() -> None:
    asked = [{"role": "user", "content": "hi"}]
    reply = Reply("m", asked)
    reply.finish(RuntimeError("401"))
    assert reply.messages == asked


def test_tool_call_split_over_chunks() -> None:
    reply = Reply("m")
    first = {"id": "t1", "function": {"name": "f", "arguments": '{"a"'}, "index": 0}
    rest = {"function": {"name": "", "arguments": ": 1}"}, "index": 0}
    reply.add(chunk(delta={"tool_calls": [first]}))
    reply.add(chunk(delta={"tool_calls": [rest]}, finish="tool_calls"))
    reply.finish()
    assert len(reply.tool_calls) == 1
    assert reply.tool_calls[0].function.arguments == '{"a": 1}'
    assert reply.messages[-1]["tool_calls"][0]["id"] == "t1"


def test_error_keeps_partial_text_and_await_returns() -> None:
    async def main() -> None:
        reply = Reply("m")
        reply.add(chunk("partial"))
        waiter = asyncio.ensure_future(reply._wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        reply.finish(RuntimeError("cut"))
        assert await reply is reply
        assert reply.text == "partial" and isinstance(reply.error, RuntimeError)
        assert not reply.stopped
        reply.finish(None)  # a second finish changes nothing
        assert isinstance(reply.error, RuntimeError)

    asyncio.run(main())


# -- rendering ----------------------------------------------------------------------------------


def test_status_line() -> None:
    reply = Reply("mistral-small-latest")
    reply.add(chunk("a "))
    assert "streaming…" in status_line(reply)
    reply.add(chunk("b", finish="length", usage={"completion_tokens": 2}))
    reply.finish()
    line = status_line(reply)
    for part in ("mistral-small-latest", "2 tokens", " s", "tokens/s", "length"):
        assert part in line, line
    done = Reply("m")
    done.add(chunk("x", finish="stop"))
    done.finish()
    assert "finish reason" not in status_line(done)
    stopped = Reply("m")
    stopped.finish(KeyboardInterrupt())
    assert "stopped" in status_line(stopped) and stopped.stopped


def test_plain_text_is_the_raw_markdown_and_the_status_line() -> None:
    reply = Reply("mistral-small-latest")
    reply.add(chunk("a_b*c", finish="tool_calls"))
    reply.finish()
    text = ReplyRenderer(reply).text()
    assert text.startswith("a_b*c\n\n")
    assert "mistral-small-latest" in text and "finish reason: tool_calls" in text
    assert "\\" not in text and not text.endswith("*")


def test_bundle_is_sanitised_html_and_plain_text_never_markdown(screen: FakeScreen) -> None:
    reply = Reply("m")
    view = LiveView(reply)
    view.start()
    reply.add(chunk("# Hi <img src=x onerror=alert(1)>"))
    reply.finish()
    view.finish()
    final = screen.reply.shown[-1]
    assert set(final) == {"text/html", "text/plain"}
    assert "<h1>Hi &lt;img src=x onerror=alert(1)&gt;</h1>" in final["text/html"]
    assert final["text/plain"].startswith("# Hi <img src=x onerror=alert(1)>")
    text_view = LiveView(reply, fmt="text")
    assert set(text_view.bundle()) == {"text/plain"}


def test_thinking_is_shown_apart_and_collapsed_when_done() -> None:
    reply = Reply("m")
    reply.add(chunk([{"type": "thinking", "thinking": [{"type": "text", "text": "step one"}]}]))
    renderer = ReplyRenderer(reply)
    streaming = renderer.body_html()
    assert streaming.startswith(
        '<details class="nb-mistral-thinking" open><summary>Thinking</summary>'
    )
    reply.add(chunk("The answer"))
    reply.finish()
    done = renderer.body_html()
    head, tail = done.split("</details>")
    assert head.startswith('<details class="nb-mistral-thinking"><summary>Thinking</summary>')
    assert "step one" in head
    assert "The answer" in tail and "step one" not in tail


def test_an_open_fence_leaves_the_status_line_outside_the_code() -> None:
    reply = Reply("m")
    reply.add(chunk("```python\nprint(1)\n"))
    html = ReplyRenderer(reply).body_html()
    code_end = html.index("</code></pre>")
    assert html.index('<p class="nb-mistral-status">') > code_end


def test_helpers() -> None:
    assert code_of("intro\n\n```py\nx = 1\n```\n\n```\ny\n```") == "x = 1"
    assert code_of("no code") is None


def test_model_html_is_inert_in_the_rendered_reply() -> None:
    hostile = (
        "<img src=x onerror=alert(1)>\n<script>alert(1)</script>\n<svg onload=alert(1)>\n"
        "[click](javascript:alert(1))\n\n**bold** and `<img src=y>`"
    )
    reply = Reply("m<img src=z>")
    reply.add(chunk([{"type": "thinking", "thinking": [{"type": "text", "text": hostile}]}]))
    reply.add(chunk(hostile))
    call = {"id": "t", "function": {"name": "<svg>", "arguments": hostile}}
    reply.add(chunk(delta={"tool_calls": [call]}))
    reply.finish(RuntimeError("<script>x</script>"))
    html = ReplyRenderer(reply).html()
    assert violations(html, chrome=True, style=STYLE) == []
    assert violations(reply._repr_html_(), chrome=True, style=STYLE) == []
    assert "<strong>bold</strong>" in html  # formatting is kept
    assert reply.text == hostile
    assert (
        ReplyRenderer(reply).text().startswith(hostile.replace("javascript:", "javascript\u200d:"))
    )


# -- interpolation ------------------------------------------------------------------------------


class Obj:
    attr = "A"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{x}", "42"),
        ("{d[k]} {d[0]}", "vee zero"),
        ("{o.attr}", "A"),
        ("{In[1]}", "x = 42"),
        ("{Out[1]}", "out"),
        ("{x!r} {s!r} {x:>4}", "42 'str'   42"),
        ("{{x}} {{ and }}", "{x} { and }"),
        ("{nope} {x.nope} {d[missing]}", "{nope} {x.nope} {d[missing]}"),
        ('{"a": 1} {0} { x } {}', '{"a": 1} {0} { x } {}'),
        ("{__import__('os').getcwd()}", "{__import__('os').getcwd()}"),
        ("{x}{x}", "4242"),
        ("multi\n{x\n}", "multi\n{x\n}"),
    ],
)
def test_interpolate(template: str, expected: str) -> None:
    namespace = {
        "x": 42,
        "s": "str",
        "d": {"k": "vee", 0: "zero"},
        "o": Obj(),
        "In": ["", "x = 42"],
        "Out": {1: "out"},
    }
    assert interpolate(template, namespace) == expected


# -- drivers ------------------------------------------------------------------------------------


class ClosingEvents:
    """An event source that records whether it was closed, and may raise part-way."""

    def __init__(self, events: list[Any], fail_after: int | None, exc: BaseException) -> None:
        self.events, self.fail_after, self.exc = events, fail_after, exc
        self.closed = False

    def __enter__(self) -> Iterator[Any]:
        return self._gen()

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def _gen(self) -> Iterator[Any]:
        for i, event in enumerate(self.events):
            if i == self.fail_after:
                raise self.exc
            yield event


def test_drive_interrupted_keeps_partial_and_closes(screen: FakeScreen) -> None:
    source = ClosingEvents([chunk(t) for t in words(10)], 4, KeyboardInterrupt())
    reply = Reply("m")
    with pytest.raises(KeyboardInterrupt):
        drive(lambda: source, reply, LiveView(reply))
    assert source.closed
    assert reply.text == "".join(words(4)) and reply.done and reply.stopped
    assert "stopped" in screen.reply.shown[-1]["text/html"]


def test_drive_async_and_background_stop(screen: FakeScreen) -> None:
    closed: list[bool] = []

    @contextlib.asynccontextmanager
    async def slow() -> AsyncIterator[AsyncIterator[Any]]:
        async def gen() -> AsyncIterator[Any]:
            for token in words(1000):
                await asyncio.sleep(0.005)
                yield chunk(token)

        try:
            yield gen()
        finally:
            closed.append(True)

    async def main() -> None:
        whole = Reply("m")
        assert await drive_async(lambda: _fast(words(30)), whole, LiveView(whole)) is whole
        assert whole.text == "".join(words(30))

        reply = Reply("m")
        start_background(slow, reply, LiveView(reply), asyncio.get_running_loop())
        while reply.deltas < 5:
            await asyncio.sleep(0.01)
        reply._stop_button.click()
        await reply
        assert closed == [True] and reply.stopped and reply.done
        assert reply.text and "".join(words(1000)).startswith(reply.text)

    asyncio.run(main())


@contextlib.asynccontextmanager
async def _fast(tokens: list[str]) -> AsyncIterator[AsyncIterator[Any]]:
    async def gen() -> AsyncIterator[Any]:
        for token in tokens:
            yield chunk(token)

    yield gen()


def test_reply_stop_from_code_and_a_task_cancelled_before_it_ran(screen: FakeScreen) -> None:
    """``reply.stop()`` does what the Stop button does; a reply whose task never got to run
    still ends, so ``await reply`` cannot hang."""

    async def main() -> None:
        early = Reply("m")
        start_background(
            lambda: _fast(words(10)), early, LiveView(early), asyncio.get_running_loop()
        )
        early.stop()  # before the task's first step
        await asyncio.wait_for(early, 2)
        assert early.done and early.stopped and early.text == ""

        @contextlib.asynccontextmanager
        async def yielding() -> AsyncIterator[AsyncIterator[Any]]:
            async def gen() -> AsyncIterator[Any]:
                for token in words(10_000):
                    await asyncio.sleep(0)
                    yield chunk(token)

            yield gen()

        reply = Reply("m")
        start_background(yielding, reply, LiveView(reply), asyncio.get_running_loop())
        while reply.deltas < 5:
            await asyncio.sleep(0)
        reply.stop()
        await asyncio.wait_for(reply, 2)
        assert reply.stopped and 0 < len(reply.text) < len("".join(words(10_000)))

    asyncio.run(main())


def test_an_error_is_said_once_by_the_view_only_where_no_cell_error_says_it(
    screen: FakeScreen,
) -> None:
    for background, times in ((False, 0), (True, 1)):
        reply = Reply("m")
        view = LiveView(reply, background=background)
        view.start()
        reply.add(chunk("partial"))
        view.refresh()
        reply.finish(RuntimeError("server said no: see http://127.0.0.1:8765)."))
        view.finish()
        final = screen.handles[-1].shown[-1]
        for shown in (final["text/html"], final["text/plain"]):
            assert shown.count("server said no") == times
            assert "error" in shown
        if background:
            assert "see http://127.0.0.1:8765)." in final["text/html"]  # no backslashes
