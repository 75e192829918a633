"""``%%mistral`` and the Python API in a real ipykernel, read through IOPub as a front end.

One kernel and one emulator serve the whole module (kernel start-up is the slow part); each
test resets the emulator's pace and records. Expected replies come from the emulator's own
deterministic reply function applied to the request body it received.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from kernel_harness import (
    Execution,
    KernelHarness,
    Msg,
    count_updates,
    display_messages,
    limit,
    markup_payloads,
    markup_violations,
    max_in_window,
    notebook_outputs,
    reply_display_id,
    strip_ansi,
)

from nb_mistral.emulator import CannedReply as EmulatedReply
from nb_mistral.emulator import Emulator, build_reply

pytestmark = pytest.mark.timeout(120)

CHAT = "/v1/chat/completions"


@pytest.fixture(autouse=True)
def fresh(kernel_emulator: Emulator, nb_kernel: KernelHarness) -> Iterator[None]:
    """Each test starts with a fast emulator and no recorded requests."""
    nb_kernel.wait_quiet(0.2)
    kernel_emulator.tokens_per_second = None
    kernel_emulator.reset()
    yield
    kernel_emulator.tokens_per_second = None


# -- helpers ----------------------------------------------------------------------------------


def chat_requests(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.path == CHAT]


def expected(emu: Emulator, index: int = -1) -> EmulatedReply:
    """What the emulator streamed for its ``index``-th chat request."""
    return build_reply(chat_requests(emu)[index].json)


def last_prompt(emu: Emulator) -> str:
    return str(chat_requests(emu)[-1].json["messages"][-1]["content"])


def wait_until(condition: Any, timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def error_lines(ex: Execution) -> list[str]:
    assert ex.status == "error", ex.reply["content"]
    error = ex.error
    assert error is not None
    return [strip_ansi(line) for line in "\n".join(error["traceback"]).splitlines()]


def final_html(msgs: list[Msg]) -> str:
    """The (sanitised) HTML of the reply as the front end shows it last."""
    shown = display_messages(msgs, reply_display_id(msgs))
    return str(shown[-1].content["data"]["text/html"])


def assert_saved_as_html(msgs: list[Msg], text: str) -> None:
    """A saved notebook keeps the reply as a ``text/html`` display plus its raw Markdown as
    ``text/plain`` (no widget state), and never as ``text/markdown``."""
    outputs = notebook_outputs(msgs)
    assert not any("text/markdown" in o.get("data", {}) for o in outputs), outputs
    shown = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(shown) == 1, outputs
    html = shown[0]["data"]["text/html"]
    assert "streaming…" not in html
    assert shown[0]["data"]["text/plain"].startswith(text[:20])
    for word in re.findall(r"[A-Za-z]{4,}", text)[:50]:
        assert word in html


# -- live updates -------------------------------------------------------------------------------


def test_slow_stream_updates_early_and_often(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    base = nb_kernel.round_trip()
    kernel_emulator.tokens_per_second = 60
    ex = nb_kernel.run("%%mistral --max-tokens 180\nTell me how streaming works", timeout=60)
    did = reply_display_id(ex.messages)
    updates = display_messages(ex.messages, did)
    assert len(updates) >= 5, updates
    first_update = next(m for m in updates if m.msg_type == "update_display_data")
    # visible from the first delta: long before the ~3 s stream ends
    assert ex.idle_at - first_update.t > 1.5
    assert first_update.t - ex.sent_at < limit(1.5, base)
    want = expected(kernel_emulator)
    assert len(want.content) == 180
    assert nb_kernel.evaluate("_mistral.text") == want.text == "".join(want.content)
    assert_saved_as_html(ex.messages, want.text)


def test_fast_stream_is_throttled(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    ex = nb_kernel.run("%%mistral --max-tokens 2000\nAs fast as you can", timeout=60)
    updates = count_updates(ex.messages, reply_display_id(ex.messages))
    assert 2 <= updates <= 40, updates
    want = expected(kernel_emulator)
    assert len(want.content) == 2000
    assert nb_kernel.evaluate("_mistral.text") == want.text
    assert nb_kernel.evaluate("_mistral.deltas") == 2000


def test_at_most_about_20_updates_in_any_second(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    kernel_emulator.tokens_per_second = 100
    ex = nb_kernel.run("%%mistral --max-tokens 300\nA steady stream", timeout=60)
    updates = display_messages(ex.messages, reply_display_id(ex.messages))
    assert max_in_window([m.t for m in updates], 1.0) <= 24, [round(m.t, 3) for m in updates]
    assert len(updates) >= 10
    assert nb_kernel.evaluate("_mistral.text") == expected(kernel_emulator).text


# -- background mode ----------------------------------------------------------------------------


def test_background_stream_keeps_kernel_responsive(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    base = nb_kernel.round_trip()
    kernel_emulator.tokens_per_second = 100
    ex = nb_kernel.run("%%mistral --bg --max-tokens 300\nStream behind my back", timeout=30)
    assert ex.duration < limit(1.0, base)
    trivial = nb_kernel.run("1+1")
    assert trivial.duration < limit(0.5, base)
    assert nb_kernel.evaluate("_mistral.done") is False
    done = nb_kernel.run("_r = await _mistral\nprint(_r.done, _r.error)", timeout=30)
    assert done.stdout.split() == ["True", "None"]
    want = expected(kernel_emulator)
    assert nb_kernel.evaluate("_mistral.text") == want.text
    # the updates after idle still belong to the cell that asked, and end as Markdown
    msgs = nb_kernel.wait_for(
        lambda _m: "streaming…" not in final_html(nb_kernel.messages(ex.msg_id)), 10
    )
    msgs = nb_kernel.messages(ex.msg_id)
    assert count_updates(msgs, reply_display_id(msgs)) >= 5
    assert_saved_as_html(msgs, want.text)


def test_kernel_stays_responsive_while_a_long_reply_streams(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    """Re-rendering a long reply costs more and more: the view must leave the kernel time."""
    base = nb_kernel.round_trip()
    kernel_emulator.tokens_per_second = 1000
    nb_kernel.run("%%mistral --bg --max-tokens 30000 -o long\nA very long answer", timeout=30)
    wait_until(lambda: nb_kernel.evaluate("long.deltas") >= 4000, 30, "a long reply")
    trips = [nb_kernel.run("1+1").duration for _ in range(8)]
    assert nb_kernel.evaluate("long.done") is False
    nb_kernel.run("long.stop_button.click()\nawait long", timeout=10)
    assert max(trips) < limit(0.5, base), (trips, base)


def test_stop_button_closes_the_connection_and_keeps_the_partial_reply(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    kernel_emulator.tokens_per_second = 40
    ex = nb_kernel.run("%%mistral --bg --max-tokens 400 -o stopped\nStop me", timeout=30)
    wait_until(lambda: nb_kernel.evaluate("stopped.deltas") >= 5, what="some deltas")
    nb_kernel.run("stopped.stop_button.click()")
    assert kernel_emulator.wait_for_disconnect(5)
    nb_kernel.run("await stopped", timeout=10)
    state = nb_kernel.evaluate(
        "{'done': stopped.done, 'stopped': stopped.stopped, 'text': stopped.text}"
    )
    full = expected(kernel_emulator).text
    assert state["done"] and state["stopped"]
    assert state["text"] and full.startswith(state["text"]) and state["text"] != full
    msgs = nb_kernel.wait_for(lambda _m: "stopped" in final_html(nb_kernel.messages(ex.msg_id)), 10)
    msgs = nb_kernel.messages(ex.msg_id)
    assert "stopped" in final_html(msgs)


def test_interrupt_stops_a_foreground_stream(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    base = nb_kernel.round_trip()
    kernel_emulator.tokens_per_second = 20
    ex = nb_kernel.submit("%%mistral --max-tokens 400\nInterrupt me")
    nb_kernel.wait_for(
        lambda msgs: (
            sum(1 for m in msgs if m.parent_id == ex.msg_id and m.msg_type == "update_display_data")
            >= 2
        ),
        timeout=15,
    )
    interrupted_at = time.monotonic()
    nb_kernel.interrupt()
    nb_kernel.wait(ex, timeout=15)
    assert ex.idle_at - interrupted_at < limit(3, base)
    assert kernel_emulator.wait_for_disconnect(5)
    lines = error_lines(ex)
    assert len(lines) <= 3 and "KeyboardInterrupt" in lines[0], lines
    text = nb_kernel.evaluate("_mistral.text")
    full = expected(kernel_emulator).text
    assert text and full.startswith(text) and text != full
    assert nb_kernel.evaluate("_mistral.stopped") is True
    assert "stopped" in final_html(ex.messages)


# -- inert markup -------------------------------------------------------------------------------

PAYLOADS = (
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "[click](javascript:alert(1))",
)
HOSTILE_PROMPT = "Repeat these:\n" + "\n".join(PAYLOADS) + "\nand `<img src=y onerror=alert(2)>`"


@pytest.mark.parametrize("options", ["", "--bg", "-m magistral-small-latest", "-f text"])
def test_model_markup_is_inert(
    nb_kernel: KernelHarness, kernel_emulator: Emulator, options: str
) -> None:
    kernel_emulator.tokens_per_second = 400
    start = nb_kernel.mark()
    nb_kernel.run(f"%%mistral {options}\n{HOSTILE_PROMPT}", timeout=30)
    nb_kernel.run("await _mistral", timeout=30)
    nb_kernel.run("_mistral")  # its _repr_html_ too
    nb_kernel.wait_quiet(0.3)
    text = nb_kernel.evaluate("_mistral.text")
    assert text == expected(kernel_emulator).text
    for payload in PAYLOADS:
        assert payload in text  # the variable keeps the raw text
    msgs = nb_kernel.messages(since=start)
    payloads = markup_payloads(msgs)
    assert payloads
    assert markup_violations(payloads) == []
    assert not [channel for channel, _value in payloads if channel == "text/markdown"]
    if options == "-f text":
        outputs = notebook_outputs(msgs)
        assert any(payload in json.dumps(outputs) for payload in PAYLOADS[:1])


def test_the_checker_would_see_live_markup() -> None:
    for payload in PAYLOADS:
        assert markup_violations([("text/markdown", f"> {payload}")]), payload
    assert markup_violations([("widget", "<img src=x>")])
    assert not markup_violations([("text/markdown", "> \\<img src=x onerror=alert(1)>")])


# -- thinking -----------------------------------------------------------------------------------


def test_thinking_goes_apart(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    ex = nb_kernel.run("%%mistral -m magistral-small-latest\nThink first", timeout=30)
    want = expected(kernel_emulator)
    assert want.thinking_text
    got = nb_kernel.evaluate("{'text': _mistral.text, 'thinking': _mistral.thinking}")
    assert got == {"text": want.text, "thinking": want.thinking_text}
    markdown = final_html(ex.messages)
    details = markdown.index("<details")
    closed = markdown.index("</details>")
    assert details < markdown.index("Emulated reasoning") < closed
    assert "Emulated reasoning" not in markdown[closed:]
    assert "offline emulator" in markdown[closed:]  # the answer, after the reasoning


# -- errors and secrets -------------------------------------------------------------------------


def test_401_is_a_short_error_and_the_key_never_reaches_the_front_end(
    nb_kernel: KernelHarness,
) -> None:
    key = nb_kernel.env["NB_TEST_WRONG_KEY"]
    start = nb_kernel.mark()
    shell_replies: list[dict[str, Any]] = []
    with Emulator(api_key="the-right-key") as locked:
        try:
            for code in (
                f"%config MistralMagics.server_url = {locked.url!r}",
                'import os\n%config MistralMagics.api_key = os.environ["NB_TEST_WRONG_KEY"]',
            ):
                shell_replies.append(nb_kernel.run(code).reply)
            ex = nb_kernel.execute("%%mistral\nHello?", timeout=30)
            shell_replies.append(ex.reply)
            lines = error_lines(ex)
            assert len(lines) <= 3, lines
            assert "401" in lines[0] and "Unauthorized" in lines[0]
            err = nb_kernel.evaluate(
                "[type(_mistral.error).__name__, _mistral.error.status_code, _mistral.done]"
            )
            assert err == ["APIError", 401, True]
            listing = nb_kernel.run("%config MistralMagics")
            assert "api_key" in listing.stdout
            shell_replies.append(listing.reply)
            value = nb_kernel.run("%config MistralMagics.api_key")
            shell_replies.append(value.reply)
            for code in (
                "_mistral",
                "repr(_mistral.error)",
                "print(_mistral.error)",
                "get_ipython().find_cell_magic('mistral').__self__",
            ):
                shell_replies.append(nb_kernel.execute(code).reply)
            nb_kernel.execute("%mistral models")  # a 401 too
            nb_kernel.wait_quiet(0.3)
            assert locked.request_count >= 2
        finally:
            nb_kernel.run(
                "%config MistralMagics.server_url = None\n%config MistralMagics.api_key = None"
            )
    assert nb_kernel.messages(since=start)
    msgs = nb_kernel.messages()  # every message since the kernel started
    for m in msgs:
        assert key not in m.raw_text, m
        assert key not in json.dumps(m.msg, default=str)
    for reply in shell_replies:
        assert key not in json.dumps(reply, default=str)


def test_no_key_for_the_official_server_says_what_to_do(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    nb_kernel.run("%%mistral --max-tokens 3\nwarm up the client cache")
    nb_kernel.run(
        "import os, socket\n"
        "_saved_url = os.environ.pop('MISTRAL_SERVER_URL')\n"
        "_net = []\n"
        "_real = (socket.getaddrinfo, socket.create_connection)\n"
        "def _no_net(*a, **k):\n"
        "    _net.append(a)\n"
        "    raise OSError('no network in this test')\n"
        "socket.getaddrinfo = socket.create_connection = _no_net\n"
    )
    try:
        ex = nb_kernel.execute("%%mistral\nHello?", timeout=30)
        net = nb_kernel.evaluate("[repr(a) for a in _net]")
    finally:
        nb_kernel.run(
            "socket.getaddrinfo, socket.create_connection = _real\n"
            "os.environ['MISTRAL_SERVER_URL'] = _saved_url"
        )
    lines = error_lines(ex)
    assert len(lines) <= 3, lines
    message = " ".join(lines)
    assert "MISTRAL_API_KEY" in message and "MISTRAL_SERVER_URL" in message
    assert "emulator" in message
    assert net == []
    assert nb_kernel.evaluate("type(_mistral.error).__name__") == "NoAPIKeyError"
    # with the server back in the environment, the next cell uses it (no stale client)
    nb_kernel.run("%%mistral --max-tokens 3\nback again")
    assert last_prompt(kernel_emulator) == "back again"


# -- the prompt and the request -----------------------------------------------------------------


def test_interpolation(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    marked = nb_kernel.run("x = 42\nd = {'k': 'vee'}\n'the marked cell'")
    n = marked.reply["content"]["execution_count"]
    nb_kernel.run(
        "%%mistral --max-tokens 5\n"
        f"x={{x}} d={{d[k]}} r={{x!r}} w={{x:>4}} lit={{{{x}}}} bad={{nope}} "
        f'code={{In[{n}]}} out={{Out[{n}]}} json={{"a": 1}}'
    )
    assert last_prompt(kernel_emulator) == (
        "x=42 d=vee r=42 w=  42 lit={x} bad={nope} "
        "code=x = 42\nd = {'k': 'vee'}\n'the marked cell' out=the marked cell "
        'json={"a": 1}'
    )
    nb_kernel.run("%%mistral --raw --max-tokens 5\nx={x} lit={{x}}")
    assert last_prompt(kernel_emulator) == "x={x} lit={{x}}"


def test_continue_and_reset(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    nb_kernel.run("%%mistral --max-tokens 20\nFirst question")
    first = expected(kernel_emulator).text
    nb_kernel.run("%%mistral -c --max-tokens 20\nSecond question")
    assert chat_requests(kernel_emulator)[-1].json["messages"] == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "Second question"},
    ]
    assert "Conversation forgotten" in nb_kernel.run("%mistral reset").stdout
    nb_kernel.run("%%mistral -c --max-tokens 20\nThird question")
    assert chat_requests(kernel_emulator)[-1].json["messages"] == [
        {"role": "user", "content": "Third question"}
    ]


def test_format_code_sets_next_input(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    ex = nb_kernel.run("%%mistral -f code\nWrite a function")
    text = expected(kernel_emulator).text
    match = re.search(r"```python\n(.*?)\n```", text, re.S)
    assert match is not None
    payloads = [p for p in ex.payloads if p.get("source") == "set_next_input"]
    assert [p["text"] for p in payloads] == [match.group(1)]


def test_options_reach_the_request(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    nb_kernel.run(
        '%%mistral -o answer -m mistral-small-latest -s "Be brief." -t 0.25 --max-tokens 7\n'
        "Options please"
    )
    body = chat_requests(kernel_emulator)[-1].json
    assert body["model"] == "mistral-small-latest"
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 7
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Options please"},
    ]
    assert nb_kernel.evaluate("answer is _mistral") is True
    assert nb_kernel.evaluate("answer.text") == expected(kernel_emulator).text


def test_models_command(nb_kernel: KernelHarness) -> None:
    from nb_mistral.emulator._wire import MODELS

    out = nb_kernel.run("%mistral models").stdout
    assert out.split() == [model for model, _, _ in MODELS]


def test_help_documents_every_option(nb_kernel: KernelHarness) -> None:
    doc = nb_kernel.run("print(get_ipython().find_cell_magic('mistral').__doc__)").stdout
    for option in (
        "-m",
        "--model",
        "-o",
        "--out",
        "-s",
        "--system",
        "-t",
        "--temperature",
        "--max-tokens",
        "-f",
        "--format",
        "-c",
        "--continue",
        "--bg",
        "--raw",
        "markdown",
        "text",
        "code",
        "models",
        "reset",
    ):
        assert re.search(rf"(^|[\s\[{{,]){re.escape(option)}\b", doc), option


# -- the saved notebook -------------------------------------------------------------------------


def test_a_saved_notebook_shows_every_reply_as_html(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    cells = []
    for source in (
        "%%mistral --max-tokens 30\nfirst",
        "%%mistral --bg --max-tokens 30\nsecond",
        "%%mistral -m magistral-small-latest --max-tokens 40\nthird",
        "%%mistral -c --max-tokens 30\nfourth",
    ):
        ex = nb_kernel.run(source, timeout=30)
        nb_kernel.run("await _mistral", timeout=30)
        cells.append((source, ex, expected(kernel_emulator).text))
    nb_kernel.wait_quiet(0.3)
    notebook = nbformat.v4.new_notebook()
    for source, ex, text in cells:
        outputs = notebook_outputs(nb_kernel.messages(ex.msg_id))
        assert_saved_as_html(nb_kernel.messages(ex.msg_id), text)
        cell = nbformat.v4.new_code_cell(source, outputs=outputs)
        notebook.cells.append(cell)
    nbformat.validate(nbformat.from_dict(json.loads(nbformat.writes(notebook))))


# -- the Python API -----------------------------------------------------------------------------


def test_stream_and_astream(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    ex = nb_kernel.run("import nb_mistral\nr1 = nb_mistral.stream('from code', max_tokens=25)")
    assert nb_kernel.evaluate("r1.text") == expected(kernel_emulator).text
    assert nb_kernel.evaluate("r1.done") is True
    shown = display_messages(ex.messages, reply_display_id(ex.messages))
    assert set(shown[-1].content["data"]) == {"text/html", "text/plain"}
    nb_kernel.run("r2 = await nb_mistral.astream('from async code', max_tokens=25)")
    assert nb_kernel.evaluate("[r2.text, r2.done]") == [expected(kernel_emulator).text, True]


def test_show_a_list_and_an_async_generator(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    nb_kernel.run(
        "import nb_mistral\n"
        "with nb_mistral.Mistral().chat.stream(model='mistral-small-latest',\n"
        "        messages=[{'role': 'user', 'content': 'events'}], max_tokens=30) as s:\n"
        "    events = list(s)\n"
        "r3 = nb_mistral.show(events)\n"
        "async def agen():\n"
        "    for e in events:\n"
        "        yield e\n"
        "r4 = nb_mistral.show(agen())\n"
        "await r4\n"
    )
    want = expected(kernel_emulator).text
    assert nb_kernel.evaluate("[r3.text, r3.done, r4.text, r4.done]") == [want, True, want, True]


def test_show_the_official_sdk_stream(nb_kernel: KernelHarness, kernel_emulator: Emulator) -> None:
    nb_kernel.run(
        "import os, nb_mistral\n"
        "from mistralai.client import Mistral as SDK\n"
        "sdk = SDK(api_key='x', server_url=os.environ['MISTRAL_SERVER_URL'])\n"
        "r5 = nb_mistral.show(sdk.chat.stream(model='mistral-small-latest',\n"
        "    messages=[{'role': 'user', 'content': 'official sdk'}], max_tokens=30))\n"
    )
    want = expected(kernel_emulator).text
    assert nb_kernel.evaluate("[r5.text, r5.done, r5.error is None]") == [want, True, True]
    nb_kernel.run(
        "r6 = nb_mistral.show(await sdk.chat.stream_async(model='magistral-small-latest',\n"
        "    messages=[{'role': 'user', 'content': 'official async'}], max_tokens=30))\n"
        "await r6\n"
    )
    want_reply = expected(kernel_emulator)
    assert nb_kernel.evaluate("[r6.text, r6.thinking, r6.done, r6.error is None]") == [
        want_reply.text,
        want_reply.thinking_text,
        True,
        True,
    ]
