"""``%%mistral --over`` in-process (an ``InteractiveShell``) against the emulator: options reach
every request, the Batch is bound, a missing name is a one-line usage error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nb_mistral import Batch
from nb_mistral.emulator import Emulator


@pytest.fixture
def shell(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nb_mistral")
    yield ip


def chat_bodies(emulator: Emulator) -> list[Any]:
    return [r.json for r in emulator.requests if r.path == "/v1/chat/completions"]


def test_over_binds_a_batch_and_sends_the_options(
    shell: InteractiveShell, emulator: Emulator
) -> None:
    shell.user_ns["rows"] = [{"name": "ada"}, {"name": "bob"}]
    shell.run_cell_magic(
        "mistral",
        "--over rows -o out -m mistral-small-latest -s 'Be brief.' --max-tokens 7 -t 0.2",
        "Greet {name}\n",
    )
    batch = shell.user_ns["out"]
    assert isinstance(batch, Batch) and batch.done and batch.errors == {}
    bodies = sorted(chat_bodies(emulator), key=lambda body: body["messages"][-1]["content"])
    assert [b["messages"][-1]["content"] for b in bodies] == ["Greet ada", "Greet bob"]
    for body in bodies:
        assert body["model"] == "mistral-small-latest" and body["max_tokens"] == 7
        assert body["temperature"] == 0.2
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_over_a_missing_name_is_a_usage_error(shell: InteractiveShell) -> None:
    shell.user_ns.pop("nowhere", None)
    with pytest.raises(UsageError, match="--over nowhere: no such variable"):
        shell.run_cell_magic("mistral", "--over nowhere -o out", "{item}")


def test_over_without_out_binds_the_default_name(shell: InteractiveShell) -> None:
    shell.user_ns["words"] = ["x"]
    shell.run_cell_magic("mistral", "--over words --max-tokens 4", "Say {item}")
    assert shell.user_ns["_mistral_batch"].texts[0]
