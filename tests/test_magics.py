"""``%%mistral`` in-process, on an ``InteractiveShell`` against the emulator on loopback (as
IPython tests its own magics): option parsing, messages that name the problem, ``-f code``.
What needs a real kernel (interrupts, the background loop, IOPub) is in test_magics_kernel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nb_mistral import Reply
from nb_mistral.emulator import Emulator


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nb_mistral")
    yield ip


@pytest.fixture
def magic(
    shell: InteractiveShell, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[Any]:
    """Runs a ``%%mistral`` cell against a fresh emulator; collects set_next_input calls."""
    monkeypatch.setenv("NB_MISTRAL_STORE", str(tmp_path / "replies.sqlite3"))
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    inserted: list[str] = []
    monkeypatch.setattr(shell, "set_next_input", lambda text, replace=False: inserted.append(text))

    def run(line: str, cell: str | None, cell_id: str | None = None) -> Any:
        monkeypatch.setattr(
            shell,
            "parent_header",
            {"metadata": {"cellId": cell_id}} if cell_id else {},
            raising=False,
        )
        if cell is None:
            return shell.run_line_magic("mistral", line)
        return shell.run_cell_magic("mistral", line, cell)

    run.inserted = inserted  # type: ignore[attr-defined]
    run.emulator = emulator  # type: ignore[attr-defined]
    yield run


def chat_requests(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize(
    ("line", "unknown", "suggestion"),
    [
        ("--max_tokens 10", "--max_tokens", "--max-tokens"),
        ("--temprature 0.3", "--temprature", "--temperature"),
        ("-modle mistral-small-latest", "-modle", "--model"),
        ("--sytem 'Be brief.'", "--sytem", "--system"),
    ],
)
def test_a_misspelled_option_is_named_with_the_closest_valid_one(
    magic: Any, line: str, unknown: str, suggestion: str
) -> None:
    with pytest.raises(UsageError) as raised:
        magic(line, "Hello")
    message = str(raised.value)
    assert f"unknown option {unknown}" in message
    assert f"did you mean {suggestion}?" in message
    assert "invalid choice" not in message
    assert chat_requests(magic.emulator) == []  # nothing was sent


def test_valid_options_still_parse(magic: Any) -> None:
    magic("-mmistral-small-latest --max-tokens=5 -t -0.0 -s '-be brief-'", "Hello")
    body = chat_requests(magic.emulator)[-1].json
    assert body["model"] == "mistral-small-latest"
    assert body["max_tokens"] == 5
    assert body["messages"][0] == {"role": "system", "content": "-be brief-"}


@pytest.mark.parametrize("cell", ["", "\n", "  \n\t\n   \n"])
def test_a_prompt_of_blank_lines_is_refused_and_not_sent(magic: Any, cell: str) -> None:
    with pytest.raises(UsageError, match=r"no prompt|cell body is empty"):
        magic("", cell)
    assert chat_requests(magic.emulator) == []


def test_usage_line_says_cell_magic_and_has_no_rst_backticks(shell: InteractiveShell) -> None:
    doc = shell.find_cell_magic("mistral").__doc__ or ""
    assert "%%mistral [-m MODEL]" in doc
    assert "``" not in doc


def test_code_goes_into_a_new_cell_once_per_cell(magic: Any) -> None:
    magic("-f code", "Write a function", cell_id="cell-1")
    assert len(magic.inserted) == 1
    assert "def " in magic.inserted[0] or magic.inserted[0]
    magic("-f code", "Write a function", cell_id="cell-1")  # the same cell again
    assert len(magic.inserted) == 1
    magic("-f code", "Write a function", cell_id="cell-2")  # another cell inserts its own
    assert len(magic.inserted) == 2


def test_code_once_per_cell_with_the_store_off(magic: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NB_MISTRAL_STORE", "off")
    magic("-f code", "Write a function", cell_id="cell-off")
    magic("-f code", "Write a function", cell_id="cell-off")
    assert len(magic.inserted) == 1


def test_code_again_without_a_cell_id_still_inserts(magic: Any) -> None:
    """Front ends that send no cell id (a console) get the plain behaviour."""
    magic("-f code", "Write a function")
    magic("-f code", "Write a function")
    assert len(magic.inserted) == 2


def test_a_reply_without_code_inserts_nothing_and_says_so(
    magic: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    magic("-f code --max-tokens 5", "Write a function", cell_id="prose")  # cut before any code
    assert "```" not in InteractiveShell.instance().user_ns["_mistral"].text
    assert magic.inserted == []
    assert "No code block in the reply: nothing inserted" in capsys.readouterr().out


def tokens_until(emulator: Emulator, prompt: str, marker: str) -> int:
    """How many deltas the emulator streams before ``marker`` has arrived in full."""
    from nb_mistral import Mistral

    text = ""
    with Mistral(server_url=emulator.url) as client:
        stream = client.chat.stream(
            model="mistral-large-latest", messages=[{"role": "user", "content": prompt}]
        )
        with stream:
            for count, event in enumerate(stream, 1):
                text += event.data.choices[0].delta.content or ""
                if marker in text:
                    return count
    raise AssertionError(f"{marker!r} never arrived")


def test_a_reply_cut_inside_its_code_says_so_in_the_first_line(magic: Any) -> None:
    inside = tokens_until(magic.emulator, "Write a function", "def keywords")
    magic(f"-f code --max-tokens {inside}", "Write a function", cell_id="cut")
    shell_reply: Reply = InteractiveShell.instance().user_ns["_mistral"]
    assert shell_reply.finish_reason == "length"
    assert len(magic.inserted) == 1
    first, rest = magic.inserted[0].split("\n", 1)
    assert first == "# nb_mistral: the reply was cut inside this code block (finish reason: length)"
    assert rest.startswith("def keywords")


def test_a_complete_code_block_has_no_warning_line(magic: Any) -> None:
    magic("-f code", "Write a function", cell_id="whole")
    assert magic.inserted[0].startswith("def keywords(prompt: str)")
    assert "nb_mistral" not in magic.inserted[0]


def test_code_with_bg_is_refused_with_a_reason(magic: Any) -> None:
    with pytest.raises(UsageError, match="-f code cannot stream in the background"):
        magic("-f code --bg", "Write a function")
    assert chat_requests(magic.emulator) == []


def test_reply_behaves_like_the_string_it_holds() -> None:
    reply = Reply("m")
    reply.add({"choices": [{"index": 0, "delta": {"content": "Hello\nworld"}}]})
    assert len(reply) == 11
    assert "world" in reply
    assert 3 not in reply  # type: ignore[operator]
    assert list(reply)[:5] == list("Hello")
    assert reply[:5] == "Hello"
    assert reply[-1] == "d"
    assert reply.splitlines() == ["Hello", "world"]
    assert reply.upper() == "HELLO\nWORLD"
    assert reply + "!" == "Hello\nworld!"
    assert ">" + reply == ">Hello\nworld"
    assert bool(Reply("m")) is True  # an object, not an empty string
    with pytest.raises(AttributeError):
        reply.no_such_method  # noqa: B018
    # a live object: it answers from the text so far
    reply.add({"choices": [{"index": 0, "delta": {"content": "!"}}]})
    assert len(reply) == 12


def test_the_no_key_message_gives_a_command_that_works_from_here(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The emulator command names this interpreter, so it runs from any terminal, with or
    without the virtual environment activated; and the message says how to point at it."""
    import shlex
    import subprocess
    import sys

    from nb_mistral import NoAPIKeyError

    message = str(NoAPIKeyError())
    command = message.split("`")[1]
    assert command == f"{shlex.quote(sys.executable)} -m nb_mistral.emulator"
    assert "%env MISTRAL_SERVER_URL=http://127.0.0.1:8765" in message
    # the command really starts the emulator (asked for its help, from another folder)
    done = subprocess.run(
        [*shlex.split(command), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0 and "--port" in done.stdout


def test_code_cells_are_remembered_across_a_kernel_restart(
    magic: Any, shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """ "Restart Kernel and Run All" must not add another copy: the registry lives beside the
    reply store, so a fresh MistralMagics (a new kernel) still knows the cell."""
    from nb_mistral._magics import MistralMagics

    monkeypatch.setenv("NB_MISTRAL_STORE", str(tmp_path / "replies.sqlite3"))
    shell.user_ns["__session__"] = "/work/analysis.ipynb"
    try:
        magic("-f code", "Write a function", cell_id="restart-cell")
        assert len(magic.inserted) == 1
        restarted = MistralMagics(shell=shell)  # what %load_ext makes in a new kernel
        shell.register_magics(restarted)
        magic("-f code", "Write a function", cell_id="restart-cell")
        assert len(magic.inserted) == 1
        shell.user_ns["__session__"] = "/work/other.ipynb"  # the same cell id elsewhere
        magic("-f code", "Write a function", cell_id="restart-cell")
        assert len(magic.inserted) == 2
        assert (tmp_path / "replies.sqlite3.code-cells.json").exists()
    finally:
        shell.user_ns.pop("__session__", None)
