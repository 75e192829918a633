"""``ChatWidget`` in a real kernel, driven the way a front end drives it.

The kernel talks to the in-process emulator (``MISTRAL_SERVER_URL``). Cells create and show the
widget and call ``w.ask(...)``; other cells must run promptly while a slow reply streams. The
front end's own messages (typing into the input, clicking Send or Stop) go through the shell
channel as JupyterLab sends them, so the click handlers run inside the kernel's comm dispatch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_harness import KernelHarness, Msg, limit, markup_payloads, markup_violations
from test_widget import assert_inert

from nb_mistral.emulator import Emulator

pytestmark = pytest.mark.timeout(180)

SETUP = """
try:
    from nb_mistral import ChatWidget
except ImportError:  # until the package exports it
    from nb_mistral._widgets import ChatWidget
w = ChatWidget(max_tokens=60, max_updates_per_second=10)
display(w)
"""


@pytest.fixture(scope="module")
def chat_kernel(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> Iterator[tuple[KernelHarness, Emulator]]:
    """The shared kernel (pointed at the module's emulator) with a ChatWidget ``w`` shown."""
    nb_kernel.run(SETUP)
    nb_kernel.run("await w.models_task")
    yield nb_kernel, kernel_emulator
    nb_kernel.run("w.close(); del w")


def send_comm(kernel: KernelHarness, comm_id: str, data: dict[str, Any]) -> None:
    """A widget message from the front end, on the shell channel."""
    assert kernel.kc is not None
    msg = kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kernel.kc.shell_channel.send(msg)


def click(kernel: KernelHarness, comm_id: str) -> None:
    send_comm(kernel, comm_id, {"method": "custom", "content": {"event": "click"}})


def value_updates(msgs: list[Msg], comm_id: str) -> list[Msg]:
    return [
        m
        for m in msgs
        if m.msg_type == "comm_msg"
        and m.content.get("comm_id") == comm_id
        and "value" in ((m.content.get("data") or {}).get("state") or {})
    ]


def wait_for_kernel(kernel: KernelHarness, expression: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not kernel.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.05)


def test_models_come_from_the_server(chat_kernel: tuple[KernelHarness, Emulator]) -> None:
    kernel, _emu = chat_kernel
    options = kernel.evaluate("list(w.model_dropdown.options)")
    assert "mistral-large-latest" in options and "codestral-latest" in options
    assert kernel.evaluate("w.model") == "mistral-large-latest"


def test_send_streams_on_the_kernel_loop(chat_kernel: tuple[KernelHarness, Emulator]) -> None:
    kernel, emu = chat_kernel
    kernel.run("w.clear()")
    base = kernel.round_trip()
    emu.tokens_per_second = 30  # 60 tokens: about two seconds
    mark = kernel.mark()
    sent = kernel.run('r = w.ask("Hello from the kernel <img src=x onerror=alert(1)>")')
    assert sent.duration < limit(1.0, base)
    assert kernel.evaluate("w.streaming and not r.done")
    # the notebook stays usable while the reply streams
    durations = []
    for _ in range(5):
        durations.append(kernel.run("1 + 1").duration)
        time.sleep(0.1)
    assert max(durations) < limit(0.5, base), (durations, base)
    assert kernel.evaluate("not r.done and r.deltas > 0")
    # await it in a later cell
    done = kernel.run("r = await r\nprint(r.done, r.error, r is w.last_reply)")
    assert done.stdout.strip() == "True None True"
    assert kernel.evaluate("r.tokens") == 60
    assert kernel.evaluate("len(w.transcript.children)") == 2
    assert kernel.evaluate("w.messages[-1]['content'] == r.text")
    assert kernel.evaluate("not w.streaming and not w.send_button.disabled")
    text = kernel.evaluate("r.text")
    assert "Hello from the kernel <img src=x onerror=alert(1)>" in text

    # the front end saw the reply grow in throttled steps
    body_id = kernel.evaluate("w.transcript.children[1].children[-1].model_id")
    elapsed = kernel.evaluate("r.elapsed")
    kernel.wait_quiet()
    msgs = kernel.messages(since=mark)
    updates = value_updates(msgs, body_id)
    assert 3 <= len(updates) <= elapsed * 10 + 3, (len(updates), elapsed)
    # and nothing it was sent renders model HTML as markup
    payloads = markup_payloads(kernel.messages())
    assert any("onerror" in value for _channel, value in payloads)  # the reply was scanned
    for _channel, value in payloads:
        assert_inert(value)
    assert markup_violations(payloads) == []


def test_front_end_clicks_send_and_stop(chat_kernel: tuple[KernelHarness, Emulator]) -> None:
    kernel, emu = chat_kernel
    kernel.run("w.clear()")
    emu.tokens_per_second = None
    ids = kernel.evaluate("[w.input.model_id, w.send_button.model_id, w.stop_button.model_id]")
    input_id, send_id, stop_id = ids
    # typing and clicking Send, as JupyterLab sends them
    send_comm(
        kernel,
        input_id,
        {"method": "update", "state": {"value": "First, by click"}, "buffer_paths": []},
    )
    click(kernel, send_id)
    wait_for_kernel(kernel, "w.last_reply is not None and w.last_reply.done")
    assert kernel.evaluate("w.last_reply.error is None and w.input.value == ''")
    first = kernel.evaluate("w.last_reply.text")
    assert "First, by click" in first

    # a slow second turn, stopped from the front end
    emu.tokens_per_second = 20
    disconnects = emu.disconnects
    kernel.run("w.options['max_tokens'] = 400")
    send_comm(
        kernel,
        input_id,
        {"method": "update", "state": {"value": "Second, to stop"}, "buffer_paths": []},
    )
    click(kernel, send_id)
    wait_for_kernel(kernel, "w.streaming and w.last_reply.deltas >= 3")
    sent = emu.requests[-1].json
    assert sent["messages"] == [
        {"role": "user", "content": "First, by click"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Second, to stop"},
    ]
    click(kernel, stop_id)
    wait_for_kernel(kernel, "w.last_reply.done and not w.streaming")
    assert emu.wait_for_disconnect(5, n=disconnects + 1)
    assert kernel.evaluate("w.last_reply.stopped and len(w.last_reply.text) > 0")
    assert kernel.evaluate("w.messages[-1]['content'] == w.last_reply.text")
    kernel.run("w.options['max_tokens'] = 60")
