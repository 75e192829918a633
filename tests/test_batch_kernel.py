"""``%%mistral --over`` and ``nb_mistral.map`` in a real ipykernel (whose loop is busy running
the cell): foreground, background with its Stop, and a kernel interrupt mid-batch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_harness import KernelHarness, limit

from nb_mistral.emulator import Emulator, build_reply

pytestmark = pytest.mark.timeout(120)
CHAT = "/v1/chat/completions"
LEFT_BEHIND = (
    "[t for t in __import__('asyncio').all_tasks(__import__('asyncio').get_event_loop()) "
    "if 'nb_mistral' in t.get_coro().cr_code.co_filename]"
)
BATCH_THREADS = (
    "[t.name for t in __import__('threading').enumerate() if t.name == 'nb_mistral-batch']"
)


@pytest.fixture(autouse=True)
def fresh(kernel_emulator: Emulator, nb_kernel: KernelHarness) -> Iterator[None]:
    nb_kernel.wait_quiet(0.2)
    kernel_emulator.tokens_per_second = None
    kernel_emulator.reset()
    yield
    kernel_emulator.tokens_per_second = None


def texts_sent(emu: Emulator) -> dict[str, str]:
    """Prompt → the text the emulator streamed for it."""
    sent = [r.json for r in emu.requests if r.path == CHAT]
    return {body["messages"][-1]["content"]: "".join(build_reply(body).content) for body in sent}


def test_over_a_dataframe_in_the_foreground(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    nb_kernel.run(
        "import pandas as pd\n"
        "tickets = pd.DataFrame({'title': ['late', 'broken', 'lost']}, index=[101, 102, 103])"
    )
    ex = nb_kernel.run(
        "%%mistral --over tickets -o results --max-tokens 16 --concurrency 2\n"
        "Classify the ticket: {title}",
        timeout=60,
    )
    widget_msgs = [m for m in ex.messages if m.msg_type.startswith("comm_")]
    assert any(m.msg_type == "comm_open" for m in widget_msgs)  # the progress widget
    labels = [m.raw_text for m in widget_msgs if "done · " in m.raw_text]
    assert labels and "3/3 done · 0 failed" in labels[-1]
    assert not any("Emulated" in m.raw_text for m in widget_msgs)  # counts only, no model text
    assert nb_kernel.evaluate("results.done") is True
    assert nb_kernel.evaluate("list(results.to_pandas().index)") == [101, 102, 103]
    want = texts_sent(kernel_emulator)
    titles = ["late", "broken", "lost"]
    got = nb_kernel.evaluate("results.texts")
    assert got == [want[f"Classify the ticket: {t}"] for t in titles]
    assert nb_kernel.evaluate(BATCH_THREADS) == []


def test_background_batch_returns_at_once_and_stops(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    base = nb_kernel.round_trip()
    kernel_emulator.tokens_per_second = 20  # 0.4 s a stream: waves of 4
    ex = nb_kernel.run(
        "items = [f'item {n}' for n in range(60)]\n"
        "import nb_mistral\n"
        "bg = nb_mistral.map('{item}', items, concurrency=4, wait=False, max_tokens=8)",
        timeout=30,
    )
    assert ex.duration < limit(2.0, base)
    assert nb_kernel.evaluate("bg.done") is False
    assert nb_kernel.run("1+1").duration < limit(0.5, base)  # the kernel stays responsive
    deadline = time.monotonic() + 20
    while len([r for r in kernel_emulator.requests if r.path == CHAT]) < 8:  # second wave sent
        assert time.monotonic() < deadline
        time.sleep(0.01)
    nb_kernel.run("bg.stop()\n_b = await bg")
    assert nb_kernel.evaluate("bg.done") is True
    assert nb_kernel.evaluate("bg.stopped") > 0
    assert kernel_emulator.wait_for_disconnect(timeout=5, n=1)
    assert nb_kernel.evaluate("repr(" + LEFT_BEHIND + ")") == "[]"


def test_interrupt_mid_batch_keeps_results_and_closes_streams(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    kernel_emulator.tokens_per_second = 40
    nb_kernel.run("items = [f'item {n}' for n in range(60)]")
    execution = nb_kernel.submit(
        "%%mistral --over items -o results --max-tokens 8 --concurrency 4\n{item}"
    )
    deadline = time.monotonic() + 20
    while len([r for r in kernel_emulator.requests if r.path == CHAT]) < 8:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    nb_kernel.interrupt()
    ex = nb_kernel.wait(execution, timeout=30)
    error: Any = ex.error
    assert error is not None and "KeyboardInterrupt" in error["ename"] + str(error["traceback"])
    assert "results" in str(error["traceback"])
    assert nb_kernel.evaluate("results.done") is True
    finished = nb_kernel.evaluate("results.finished")
    assert finished >= 1 and nb_kernel.evaluate("results.stopped") > 0
    want = texts_sent(kernel_emulator)
    pairs = nb_kernel.evaluate(
        "[(r.request_messages[-1]['content'], r.text) for r in results if r.error is None]"
    )
    assert len(pairs) == finished
    assert all(text == want[prompt] for prompt, text in pairs)
    unfinished = len([r for r in kernel_emulator.requests if r.path == CHAT]) - finished
    assert kernel_emulator.wait_for_disconnect(timeout=5, n=unfinished)
    assert nb_kernel.evaluate(BATCH_THREADS) == []


def test_over_in_the_background_binds_at_once(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    base = nb_kernel.round_trip()
    kernel_emulator.tokens_per_second = 100
    nb_kernel.run("words = [f'word {n}' for n in range(12)]")
    ex = nb_kernel.run("%%mistral --over words -o bgres --bg --max-tokens 8\nSay {item}")
    assert ex.duration < limit(2.0, base)
    assert nb_kernel.evaluate("type(bgres).__name__") == "Batch"
    nb_kernel.run("_done = await bgres", timeout=60)
    assert nb_kernel.evaluate("(bgres.done, bgres.finished, len(bgres.errors))") == [True, 12, 0]
    assert nb_kernel.evaluate("repr(" + LEFT_BEHIND + ")") == "[]"
