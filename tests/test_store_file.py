"""The store file: a corrupt one moved aside, the key never written, ``off`` writing nothing,
an old schema migrated."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from store_support import chat_body, key_of, new_store, record_live

from nb_mistral import APIError, MistralError
from nb_mistral.emulator import Emulator
from nb_mistral.store import (
    CURRENT_VERSION,
    CacheMode,
    NullStore,
    RecordStatus,
    Store,
    StoreWarning,
    open_store,
    request_key,
    store_path,
)
from nb_mistral.store._batch import pack
from nb_mistral.store._schema import migrate

ROOT = Path(__file__).resolve().parents[1]


def test_a_corrupt_file_is_moved_aside_with_one_warning(tmp_path: Path, emulator: Emulator) -> None:
    path = tmp_path / "replies.sqlite3"
    garbage = os.urandom(64 * 1024)
    path.write_bytes(garbage)
    with pytest.warns(StoreWarning) as caught:
        store = open_store(path, shared=False)
    assert len(caught) == 1
    assert "moved it to" in str(caught[0].message)
    assert isinstance(store, Store)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("replies.sqlite3.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    body = chat_body("after the corruption")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        live, _ = record_live(store, emulator.url, body)
        record = store.lookup(key_of(emulator.url, body))
    assert record is not None and record.status is RecordStatus.COMPLETE and live
    store.close()


def test_an_unopenable_path_gives_a_null_store_and_one_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.warns(StoreWarning) as caught:
        store = open_store(blocker / "replies.sqlite3", shared=False)
    assert len(caught) == 1
    assert isinstance(store, NullStore)
    recorder = store.recorder(server_url="http://h", body=chat_body("x"))
    recorder.event("{}")
    recorder.finish()
    assert store.history() == [] and blocker.read_text().startswith("a file")


def _file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_the_api_key_never_reaches_the_file_export_or_history(
    tmp_path: Path, emulator: Emulator
) -> None:
    path = tmp_path / "replies.sqlite3"
    key = "sk-" + secrets.token_hex(20)
    pasted = "pk-" + secrets.token_hex(20)  # a key a user pasted into a prompt
    echoed = secrets.token_hex(20)  # a bearer token a server echoed back
    store = new_store(path)
    body = chat_body("my marker prompt, with a key " + pasted + " pasted in")
    record_live(store, emulator.url, body, api_key=key, secret=pasted)
    recorder = store.recorder(server_url=emulator.url, body=chat_body("echo"))
    content = f"header was Authorization: Bearer {echoed}"
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": "stop"}
    chunk = {"id": "e", "model": "m", "choices": [choice]}
    recorder.event(json.dumps(chunk))
    recorder.finish(error=RuntimeError(f"failed with Bearer {echoed}"))
    assert store.flush()

    stored = _file_bytes(path)
    assert b"my marker prompt" in stored  # the grep can see what was written
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    for secret in (key, pasted, echoed):
        assert secret.encode() not in stored
    records = store.history()
    shown = repr(records) + "".join(
        f"{r.text}{r.request}{r.error_message}{r.prompt}{[e.data for e in r.events]}"
        for r in records
    )
    assert "[REDACTED]" in shown
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "nb_mistral.store", "export", str(out), "--store", str(path)],
        env=env,
        check=True,
        capture_output=True,
    )
    exported = out.read_text()
    assert "my marker prompt" in exported
    for secret in (key, pasted, echoed):
        assert secret not in shown and secret not in exported
    store.close()


def test_a_failed_request_is_recorded_with_its_error(tmp_path: Path) -> None:
    path = tmp_path / "private" / "replies.sqlite3"
    store = new_store(path)
    recorder = store.recorder(server_url="http://h", body=chat_body("rate me"))
    recorder.finish(error=APIError(429, "Requests rate limit exceeded"))
    (record,) = store.history()
    assert record.status is RecordStatus.ERROR and record.text == ""
    assert record.error_type == "APIError" and "rate limit" in (record.error_message or "")
    assert isinstance(record.reply().error, MistralError)
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    store.close()


def test_off_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NB_MISTRAL_STORE", "off")
    assert store_path() is None
    store = open_store(shared=False)
    assert isinstance(store, NullStore) and not store.enabled
    recorder = store.recorder(server_url="http://h", body=chat_body("nothing"))
    recorder.event('{"id": "x", "model": "m", "choices": []}')
    recorder.finish()
    assert store.lookup(recorder.key) is None and store.history() == []
    assert isinstance(open_store("OFF", shared=False), NullStore)
    assert list(tmp_path.iterdir()) == []


def test_store_path_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NB_MISTRAL_STORE", raising=False)
    assert store_path() == tmp_path / ".nb_mistral" / "replies.sqlite3"
    monkeypatch.setenv("NB_MISTRAL_STORE", str(tmp_path / "env.sqlite3"))
    assert store_path() == tmp_path / "env.sqlite3"
    assert store_path(tmp_path / "explicit.sqlite3") == tmp_path / "explicit.sqlite3"


def test_a_version_1_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "replies.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    migrate(conn, up_to=1)
    request = {"model": "m", "messages": [{"role": "user", "content": "an old question"}]}
    conn.execute(
        "INSERT INTO records (id, key, created, ended, server_url, endpoint, model, prompt, "
        "request, text, status) VALUES (?, ?, 1.0e9, 1.0e9, 'http://h', "
        "'/v1/chat/completions', 'm', 'an old question', ?, 'an old answer', 'complete')",
        ("ab" * 16, request_key("http://h", "/v1/chat/completions", request), json.dumps(request)),
    )
    frame = b'data: {"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"an old answer"},"finish_reason":"stop"}]}\n\n'  # noqa: E501
    conn.execute(
        "INSERT INTO chunks (record_seq, batch, data, sizes, offsets) VALUES (1, 0, ?, ?, ?)",
        pack([0.1], [frame]),
    )
    conn.execute("COMMIT")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()

    store = new_store(path)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    check.close()
    (record,) = store.history(search="old ANSWER")
    assert record.text == "an old answer" and record.notebook is None
    assert store.find_replay(CacheMode.ONLY, record.key, request) == record
    assert record.reply().text == "an old answer"
    store.close()
