"""The reply store in real kernels: a ``--bg`` reply recorded then replayed (same outputs and
``Reply``, one request), the key never in the file, and ``-c`` continuing a conversation in a
new kernel after a restart."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

from kernel_harness import KernelHarness, notebook_outputs, start_nb_kernel

from nb_mistral.emulator import Emulator

_STATUS_HTML = re.compile(r'<p class="nb-mistral-status">.*?</p>', re.S)
FIELDS = (
    "[r.text, r.thinking, r.model, r.id, r.finish_reason, r.tokens, r.deltas, r.messages, "
    "str(r.usage), r.done, repr(r.error), r.replayed]"
)


def chat_count(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.path.endswith("/chat/completions"))


def final_outputs(kernel: KernelHarness, msg_id: str) -> tuple[list[Any], str]:
    """A cell's outputs as a saved notebook keeps them, the status line apart."""
    outputs = notebook_outputs(kernel.outputs_since(msg_id))
    status = ""
    for output in outputs:
        data = output.get("data", {})
        if "text/html" in data:
            found = _STATUS_HTML.search(data["text/html"])
            status = found.group(0) if found else ""
            data["text/html"] = _STATUS_HTML.sub("", data["text/html"])
            data["text/plain"] = data["text/plain"].rsplit("\n\n", 1)[0]
    return outputs, status


def test_a_background_reply_is_recorded_then_replayed(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    before = chat_count(kernel_emulator)
    cell = "%%mistral --bg --cache -o {name}\nTell me about replaying in the background"
    live = nb_kernel.run(cell.format(name="first"), timeout=30)
    nb_kernel.run("await first", timeout=30)
    replay = nb_kernel.run(cell.format(name="second"), timeout=30)
    nb_kernel.run("await second", timeout=30)
    nb_kernel.wait_quiet()
    assert chat_count(kernel_emulator) == before + 1

    live_outputs, live_status = final_outputs(nb_kernel, live.msg_id)
    replay_outputs, replay_status = final_outputs(nb_kernel, replay.msg_id)
    assert replay_outputs == live_outputs and live_outputs
    assert "replayed" in replay_status and "replayed" not in live_status
    first = nb_kernel.evaluate(FIELDS.replace("r.", "first."))
    second = nb_kernel.evaluate(FIELDS.replace("r.", "second."))
    assert first[:-1] == second[:-1] and first[0]
    assert (first[-1], second[-1]) == (False, True)


def test_the_key_stays_out_and_a_new_kernel_continues_the_conversation(
    kernel_emulator: Emulator, tmp_path: Path
) -> None:
    key = "sk-" + secrets.token_hex(20)
    store = tmp_path / "replies.sqlite3"
    env = {
        "NB_MISTRAL_STORE": str(store),
        "JPY_SESSION_NAME": str(tmp_path / "analysis.ipynb"),
        "MISTRAL_API_KEY": key,
    }
    kernel = start_nb_kernel(kernel_emulator.url, **env)
    try:
        kernel.run("%%mistral -o first\nPick a number between one and ten", timeout=30)
        first_messages = kernel.evaluate("first.messages")
        kernel.run("%%mistral -c\nAdd two to it", timeout=30)
        second_messages = kernel.evaluate("_mistral.messages")
        assert kernel_emulator.requests[-1].headers.get("authorization") == f"Bearer {key}"
        files = [p for p in tmp_path.iterdir() if p.name.startswith(store.name)]
        assert any(p.name.endswith("-wal") for p in files)
        for file in files:  # while the kernel runs: the WAL holds the recent writes
            assert key.encode() not in file.read_bytes(), file.name
        history = kernel.run("%mistral history", timeout=30)
        assert "Add two to it" in history.stdout or any(
            "Add two to it" in str(m.content) for m in history.messages
        )
    finally:
        kernel.stop()
    for file in tmp_path.iterdir():
        if file.name.startswith(store.name):
            assert key.encode() not in file.read_bytes(), file.name

    restarted = start_nb_kernel(kernel_emulator.url, **env)
    try:
        restarted.run("%%mistral -c -o third\nNow double it", timeout=30)
        sent = kernel_emulator.requests[-1].json["messages"]
        assert sent[: len(second_messages)] == second_messages
        assert sent[-1] == {"role": "user", "content": "Now double it"}
        assert len(second_messages) > len(first_messages)
    finally:
        restarted.stop()


def test_a_stopped_or_interrupted_reply_is_recorded_as_stopped(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    kernel_emulator.tokens_per_second = 40
    try:
        nb_kernel.run("%%mistral --bg --max-tokens 400 -o stopped\nStop me", timeout=30)
        deadline = time.monotonic() + 15
        while nb_kernel.evaluate("stopped.deltas") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        nb_kernel.run("stopped.stop_button.click()")
        nb_kernel.run("await stopped", timeout=10)
        latest = "(lambda r: [r.status.value, r.text, r.prompt])(nb_mistral.history(1)[0])"
        nb_kernel.run("import nb_mistral")
        status, text, prompt = nb_kernel.evaluate(latest)
        assert (status, prompt) == ("stopped", "Stop me")
        assert text == nb_kernel.evaluate("stopped.text") != ""

        ex = nb_kernel.submit("%%mistral --max-tokens 400\nInterrupt me")
        nb_kernel.wait_for(
            lambda msgs: (
                sum(
                    1
                    for m in msgs
                    if m.parent_id == ex.msg_id and m.msg_type == "update_display_data"
                )
                >= 2
            ),
            timeout=15,
        )
        nb_kernel.interrupt()
        nb_kernel.wait(ex, timeout=15)
        status, text, prompt = nb_kernel.evaluate(latest)
        assert (status, prompt) == ("stopped", "Interrupt me")
        assert text == nb_kernel.evaluate("_mistral.text") != ""
    finally:
        kernel_emulator.tokens_per_second = None
