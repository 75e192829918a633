"""The notebook layer through the reply store, in-process against the emulator: every reply
recorded; record then replay gives the same displayed output and ``Reply`` (timings aside)
with one request sent; ``only`` sends nothing; history, show, resume, ``-c`` from the store."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm as comm_package
import ipywidgets
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nb_mistral
from nb_mistral import CacheMiss, ChatWidget, Reply
from nb_mistral._magics import CellError, MistralMagics
from nb_mistral.emulator import Emulator
from nb_mistral.store import STORE_ENV, RecordStatus, open_store

REPLY_FIELDS = (
    "text",
    "thinking",
    "model",
    "id",
    "finish_reason",
    "tokens",
    "deltas",
    "messages",
    "request_messages",
    "done",
    "error",
)
_STATUS_HTML = re.compile(r'<p class="nb-mistral-status">.*?</p>', re.S)


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nb_mistral")
    yield ip


@pytest.fixture
def store_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "replies.sqlite3"
    monkeypatch.setenv(STORE_ENV, str(path))
    return path


@pytest.fixture
def magics(shell: InteractiveShell) -> Iterator[MistralMagics]:
    found = shell.magics_manager.registry["MistralMagics"]
    assert isinstance(found, MistralMagics)
    found.last_reply = None
    found._continue_from_store = True
    yield found
    found.cache = None
    shell.user_ns.pop("__session__", None)


@pytest.fixture
def cell(
    shell: InteractiveShell,
    emulator: Emulator,
    store_file: Path,
    magics: MistralMagics,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """Runs a ``%%mistral`` cell (or a ``%mistral`` line); returns its displayed outputs."""
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)

    def run(line: str, body: str | None = None) -> list[dict[str, str]]:
        with capture_output() as captured:
            if body is None:
                shell.run_line_magic("mistral", line)
            else:
                shell.run_cell_magic("mistral", line, body)
        run.printed = captured.stdout  # type: ignore[attr-defined]
        return [dict(output.data) for output in captured.outputs]

    return run


def chat_count(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.path.endswith("/chat/completions"))


def without_status(outputs: list[dict[str, str]]) -> list[dict[str, str]]:
    """The final display's data, the status line (time, tokens/s, 'replayed') taken out."""
    final = outputs[-1]
    plain_text = final["text/plain"].rsplit("\n\n", 1)[0]
    return [{"text/html": _STATUS_HTML.sub("", final["text/html"]), "text/plain": plain_text}]


def assert_same_reply(live: Reply, replayed: Reply) -> None:
    for name in REPLY_FIELDS:
        assert getattr(replayed, name) == getattr(live, name), name
    assert replayed.usage == live.usage
    assert replayed.tool_calls == live.tool_calls
    assert (live.replayed, replayed.replayed) == (False, True)


def test_every_reply_is_recorded_and_replayed_identically(
    cell: Any, shell: InteractiveShell, emulator: Emulator, store_file: Path
) -> None:
    live_outputs = cell("--cache -o first", "Explain replay in two sentences")
    live = shell.user_ns["first"]
    replay_outputs = cell("--cache -o second", "Explain replay in two sentences")
    replayed = shell.user_ns["second"]
    assert chat_count(emulator) == 1
    assert_same_reply(live, replayed)
    assert without_status(replay_outputs) == without_status(live_outputs)
    assert "replayed" in replay_outputs[-1]["text/plain"].rsplit("\n\n", 1)[-1]
    assert "replayed" not in live_outputs[-1]["text/plain"].rsplit("\n\n", 1)[-1]
    records = open_store(store_file).history()
    assert [r.status for r in records] == [RecordStatus.COMPLETE]  # a replay adds no record
    assert records[0].text == live.text and replayed.replay_of == records[0].id


def test_off_mode_records_but_asks_each_time(
    cell: Any, emulator: Emulator, store_file: Path
) -> None:
    cell("", "Same question")
    cell("--no-cache", "Same question")
    assert chat_count(emulator) == 2
    assert len(open_store(store_file).history()) == 2


def test_refresh_asks_again_and_supersedes(
    cell: Any, shell: InteractiveShell, emulator: Emulator, store_file: Path
) -> None:
    cell("--cache", "Refresh me")
    cell("--cache --refresh -o fresh", "Refresh me")
    assert chat_count(emulator) == 2
    newest = open_store(store_file).history()[0]
    cell("--cache -o again", "Refresh me")
    assert chat_count(emulator) == 2
    assert shell.user_ns["again"].replay_of == newest.id


def test_continued_conversations_replay(
    cell: Any, shell: InteractiveShell, emulator: Emulator, magics: MistralMagics
) -> None:
    runs = []
    for _ in range(2):
        magics.last_reply = None
        cell("--cache", "Name a colour")
        cell("--cache -c -o follow", "And another one")
        runs.append(shell.user_ns["follow"])
    assert chat_count(emulator) == 2
    assert_same_reply(runs[0], runs[1])
    assert len(runs[1].request_messages) == 3


def test_only_mode_miss_is_a_short_cell_error_and_sends_nothing(
    cell: Any, shell: InteractiveShell, emulator: Emulator
) -> None:
    shell.run_line_magic("config", "MistralMagics.cache = 'only'")
    with pytest.raises(CellError) as raised:
        cell("-m mistral-small-latest", "Summarise the quarterly figures for the board")
    assert isinstance(raised.value.error, CacheMiss)
    assert "mistral-small-latest" in str(raised.value)
    assert "Summarise the quarterly figures" in str(raised.value)
    assert chat_count(emulator) == 0


def test_an_unknown_cache_mode_is_refused(shell: InteractiveShell, magics: MistralMagics) -> None:
    with capture_output():
        shell.run_line_magic("config", "MistralMagics.cache = 'sometimes'")
    assert magics.cache is None


def test_history_lists_searches_and_escapes(
    cell: Any, emulator: Emulator, store_file: Path
) -> None:
    cell("", "A question about <script>alert(1)</script> tables")
    cell("", "Something about penguins")
    outputs = cell("history")
    html = outputs[-1]["text/html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "penguins" in html and html.count("<tr>") == 3
    searched = cell("history -n 5 penguins")[-1]["text/plain"]
    assert "penguins" in searched and "script" not in searched
    assert "complete" in searched
    assert cell("history nothing-matches-this") == []
    assert "No recorded replies" in cell.printed


def test_show_displays_a_record_again_and_resume_continues_it(
    cell: Any, shell: InteractiveShell, emulator: Emulator, magics: MistralMagics
) -> None:
    cell("-o answer", "Tell me about otters")
    answer: Reply = shell.user_ns["answer"]
    record = open_store(None).history()[0]
    shown = cell(f"show {record.id[:10]}")[-1]
    assert answer.text[:40] in shown["text/plain"] and "replayed" in shown["text/plain"]
    cell("reset")
    cell(f"resume {record.id}")
    cell("-c -o next", "Go on")
    sent = emulator.requests[-1].json["messages"]
    assert sent[:2] == answer.messages and sent[-1]["content"] == "Go on"
    with pytest.raises(UsageError):
        cell("show 0000")


def test_continue_after_a_restart_uses_this_notebooks_last_record(
    cell: Any, shell: InteractiveShell, emulator: Emulator, magics: MistralMagics, tmp_path: Path
) -> None:
    shell.user_ns["__session__"] = str(tmp_path / "analysis.ipynb")
    cell("-o first", "Pick a number")
    first: Reply = shell.user_ns["first"]
    shell.user_ns["__session__"] = str(tmp_path / "other.ipynb")
    cell("", "An unrelated question")
    shell.user_ns["__session__"] = str(tmp_path / "analysis.ipynb")
    magics.last_reply = None  # what a kernel restart leaves
    cell("-c", "Double it")
    assert emulator.requests[-1].json["messages"] == [
        *first.messages,
        {"role": "user", "content": "Double it"},
    ]
    record = open_store(None).history()[0]
    assert record.notebook == str(tmp_path / "analysis.ipynb")


def test_stream_and_astream_replay(
    emulator: Emulator, store_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    with capture_output() as live_out:
        live = nb_mistral.stream("Sync prompt", cache="replay")
    with capture_output() as replay_out:
        replayed = nb_mistral.stream("Sync prompt", cache="replay")
    assert_same_reply(live, replayed)
    finals = [[dict(out.outputs[-1].data)] for out in (live_out, replay_out)]
    assert without_status(finals[0]) == without_status(finals[1])

    async def twice() -> tuple[Reply, Reply]:
        first = await nb_mistral.astream("Async prompt", cache="replay")
        second = await nb_mistral.astream("Async prompt", cache="replay")
        return first, second

    with capture_output():
        first, second = asyncio.run(twice())
    assert_same_reply(first, second)
    assert chat_count(emulator) == 2
    with pytest.raises(CacheMiss), capture_output():
        nb_mistral.stream("Never asked", cache="only")
    assert chat_count(emulator) == 2


def test_chat_widget_replays(
    emulator: Emulator, store_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ipywidgets.comm, "create_comm", comm_package.DummyComm)
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)

    async def conversation() -> list[Reply]:
        widget = ChatWidget("mistral-small-latest", cache="replay")
        return [await widget.ask("Hello there"), await widget.ask("How are you?")]

    live = asyncio.run(conversation())
    replayed = asyncio.run(conversation())
    assert chat_count(emulator) == 2
    for before, after in zip(live, replayed, strict=True):
        assert_same_reply(before, after)


def get_weather(city: str) -> dict[str, Any]:
    """The current weather of a city."""
    return {"city": city, "temperature": 21}


def test_tool_rounds_and_structured_replies_replay(
    emulator: Emulator, store_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    prompt = "Call get_weather for Paris and tell me about it."
    with capture_output():
        live = nb_mistral.stream(prompt, tools=[get_weather], cache="replay")
        replayed = nb_mistral.stream(prompt, tools=[get_weather], cache="replay")
    assert chat_count(emulator) == 2  # two rounds, each recorded once
    assert [m["role"] for m in replayed.messages] == ["user", "assistant", "tool", "assistant"]
    assert_same_reply(live, replayed)
    assert len(open_store(store_file).history()) == 2

    with capture_output():
        first = nb_mistral.stream("Describe a city", response_format=City, cache="replay")
        second = nb_mistral.stream("Describe a city", response_format=City, cache="replay")
    assert chat_count(emulator) == 3
    assert isinstance(second.parsed, City) and second.parsed == first.parsed
    assert second.replayed


def test_config_says_which_store_and_cache_mode(
    cell: Any, shell: InteractiveShell, store_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell("config")
    assert f"reply store: {store_file}" in cell.printed and "cache: off" in cell.printed
    shell.run_line_magic("config", "MistralMagics.cache = 'replay'")
    monkeypatch.setenv(STORE_ENV, "off")
    cell("config")
    assert "reply store: off" in cell.printed and "cache: replay" in cell.printed
