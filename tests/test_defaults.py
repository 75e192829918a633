"""The notebook layer's one client cache (``_defaults.client_for``): ``%%mistral``,
``stream``/``astream`` and ``ChatWidget`` share a client per key digest, server URL and
timeout, and a client pushed out of the cache is closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nb_mistral import _defaults
from nb_mistral._defaults import MAX_CLIENTS, client_for, default_client
from nb_mistral._secret import Secret
from nb_mistral.emulator import Emulator


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SERVER_URL", raising=False)
    _defaults._cache.clear()
    yield
    for client in _defaults._cache.values():
        client.close()
    _defaults._cache.clear()


def test_the_same_settings_share_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_SERVER_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-one-0123456789")
    client = default_client()
    assert client_for(Secret("sk-one-0123456789"), "http://127.0.0.1:8765") is client
    assert client_for(None, "http://127.0.0.1:8765") is client
    assert client.server_url == "http://127.0.0.1:8765"


def test_other_settings_get_their_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_SERVER_URL", "http://127.0.0.1:8765")
    first = default_client()
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-later-0123456789")  # set after a first try
    with_key = default_client()
    assert with_key is not first and with_key.has_api_key
    assert client_for(None, "http://127.0.0.1:9999") is not with_key
    assert client_for(None, None, timeout_ms=500) is not with_key
    assert default_client() is with_key  # and back


def test_a_client_pushed_out_is_closed(emulator: Emulator) -> None:
    clients = [client_for(Secret(f"sk-key-{n:04d}-abcdef"), emulator.url) for n in range(3)]
    for client in clients:  # each opens its connections
        client.chat.complete(
            model="mistral-small-latest", messages=[{"role": "user", "content": "x"}]
        )
    pools = [client._sync_client() for client in clients]
    for n in range(3, 3 + MAX_CLIENTS):
        client_for(Secret(f"sk-key-{n:04d}-abcdef"), emulator.url)
    assert len(_defaults._cache) == MAX_CLIENTS
    assert all(pool.is_closed for pool in pools)
