"""``%mistral config`` and the settings behind it, in-process on an ``InteractiveShell``: the
server and model actually in use (from the environment when a trait is unset), whether a key is
set (never the key), and a server URL without a scheme refused when it is set."""

from __future__ import annotations

from typing import Any

import pytest

KEY = "sk-config-test-0123456789abcdef"


@pytest.fixture
def magics(monkeypatch: pytest.MonkeyPatch) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    from nb_mistral._magics import MistralMagics

    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SERVER_URL", raising=False)
    return MistralMagics(shell=InteractiveShell.instance())


def test_a_server_url_without_scheme_is_refused_by_the_trait(
    magics: Any, caplog: pytest.LogCaptureFixture
) -> None:
    magics.shell.configurables.append(magics)
    try:
        magics.shell.run_line_magic("config", "MistralMagics.server_url = '127.0.0.1:8765'")
    finally:
        magics.shell.configurables.remove(magics)
    assert "write http://127.0.0.1:8765" in caplog.text
    assert magics.server_url is None


def test_percent_mistral_config_shows_what_is_in_use(
    magics: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_SERVER_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    magics.mistral("config")
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8765 (MISTRAL_SERVER_URL is set to http://127.0.0.1:8765)" in out
    assert "mistral-large-latest (the default)" in out
    assert "API key: set (MISTRAL_API_KEY)" in out
    magics.model = "mistral-small-latest"
    magics.server_url = "http://localhost:9000"
    monkeypatch.delenv("MISTRAL_API_KEY")
    magics.mistral("config")
    out = capsys.readouterr().out
    assert "http://localhost:9000 (server_url is http://localhost:9000)" in out
    assert "model:   mistral-small-latest\n" in out
    assert "API key: not set" in out
    assert KEY not in out


def test_a_server_url_without_scheme_in_the_environment_ends_the_cell_at_once(
    magics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nb_mistral._magics import CellError

    monkeypatch.setenv("MISTRAL_SERVER_URL", "127.0.0.1:8765")
    with pytest.raises(CellError) as info:
        magics.mistral("", "Hello?")
    assert "write http://127.0.0.1:8765" in str(info.value)
    assert "MISTRAL_SERVER_URL is set to 127.0.0.1:8765" in str(info.value)
    assert info.value._render_traceback_() == [f"\x1b[31m{info.value}\x1b[0m"]  # one line


def test_percent_config_lists_the_server_in_use(
    magics: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_SERVER_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    shell = magics.shell
    # %config shows the first MistralMagics it finds: make it this one (other tests may
    # have loaded the extension into the same shell)
    others = [c for c in shell.configurables if type(c).__name__ == "MistralMagics"]
    for other in others:
        shell.configurables.remove(other)
    shell.configurables.append(magics)
    try:
        shell.run_line_magic("config", "MistralMagics")
    finally:
        shell.configurables.remove(magics)
        shell.configurables.extend(others)
    out = capsys.readouterr().out
    assert (
        "In use: http://127.0.0.1:8765 (MISTRAL_SERVER_URL is set to http://127.0.0.1:8765)" in out
    )
    assert "In use: set (MISTRAL_API_KEY)" in out
    assert KEY not in out
