"""History, export/import, the request key and the cache mode setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from store_support import chat_body, new_store, record_live

from nb_mistral import CompletionEvent, EventStream
from nb_mistral.emulator import Emulator
from nb_mistral.store import (
    CacheMode,
    RecordStatus,
    Store,
    canonical_json,
    clean_server_url,
    records_to_pandas,
    replay_response,
    request_key,
)

ROOT = Path(__file__).resolve().parents[1]


def _fill(store: Store, url: str, tmp_path: Path) -> list[str]:
    ids = []
    prompts = ["Explain photosynthesis", "Write a haiku about rain", "Compare Rust and Go"]
    notebooks = [tmp_path / "a.ipynb", tmp_path / "b.ipynb", tmp_path / "a.ipynb"]
    for number, (prompt, notebook) in enumerate(zip(prompts, notebooks, strict=True)):
        _, recorder = record_live(
            store, url, chat_body(prompt), notebook=str(notebook), cell_id=f"cell-{number}"
        )
        ids.append(recorder.id)
    return ids


def test_history_newest_first_with_limit_search_and_notebook(
    tmp_path: Path, emulator: Emulator
) -> None:
    store = new_store(tmp_path / "replies.sqlite3")
    ids = _fill(store, emulator.url, tmp_path)
    assert [r.id for r in store.history()] == ids[::-1]
    assert [r.id for r in store.history(limit=2)] == ids[:0:-1]
    assert [r.id for r in store.history(search="HAIKU")] == [ids[1]]  # any case
    assert [r.id for r in store.history(search="synth")] == [ids[0]]  # part of a word
    assert [r.id for r in store.history(search="Go")] == [ids[2]]  # short: scanned
    assert {r.id for r in store.history(search="emulator")} == set(ids)  # reply text
    assert store.history(search='no "such" text%') == []
    assert [r.id for r in store.history(notebook=str(tmp_path / "a.ipynb"))] == [ids[2], ids[0]]
    os.chdir(tmp_path)
    assert [r.id for r in store.history(notebook="b.ipynb")] == [ids[1]]  # relative path
    record = store.get(ids[1][:8])
    assert record is not None and record.cell_id == "cell-1" and record.prompt.endswith("rain")
    assert record.messages[-1] == {"role": "assistant", "content": record.text}
    latest = store.latest(notebook=str(tmp_path / "a.ipynb"))
    assert latest is not None and latest.id == ids[2]
    store.close()


def test_records_to_pandas(tmp_path: Path, emulator: Emulator) -> None:
    pandas = pytest.importorskip("pandas")
    store = new_store(tmp_path / "replies.sqlite3")
    _fill(store, emulator.url, tmp_path)
    frame = records_to_pandas(store.history())
    assert isinstance(frame, pandas.DataFrame) and len(frame) == 3
    store.close()


def test_records_to_pandas_without_pandas_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install pandas"):
        records_to_pandas([])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "nb_mistral.store", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )


def test_export_import_round_trip_is_idempotent(tmp_path: Path, emulator: Emulator) -> None:
    source = tmp_path / "source.sqlite3"
    store = new_store(source)
    ids = _fill(store, emulator.url, tmp_path)
    store.close()
    out = tmp_path / "a.jsonl"
    result = _cli(
        "export", str(out), "--notebook", str(tmp_path / "a.ipynb"), "--store", str(source)
    )
    assert "exported 2 record(s)" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [ids[0], ids[2]]  # oldest first

    target = tmp_path / "target.sqlite3"
    assert "imported 2 new record(s)" in _cli("import", str(out), "--store", str(target)).stderr
    assert "imported 0 new record(s)" in _cli("import", str(out), "--store", str(target)).stderr

    original, imported = new_store(source), new_store(target)
    assert len(imported.history(limit=None)) == 2
    for rid in (ids[0], ids[2]):
        before, after = original.get(rid), imported.get(rid)
        assert before is not None and after is not None
        assert after == before  # every compared field
        assert (after.request, after.usage, after.key) == (before.request, before.usage, before.key)
        assert after.events == before.events
        with EventStream(replay_response(before), CompletionEvent) as stream:
            expected = list(stream)
        replayed = imported.find_replay("only", after.key, after.request)
        assert replayed is not None
        with EventStream(replay_response(replayed), CompletionEvent) as stream:
            assert list(stream) == expected
    again = tmp_path / "again.jsonl"
    _cli("export", str(again), "--store", str(target))
    assert again.read_text() == out.read_text()
    original.close()
    imported.close()


def test_import_of_a_bad_file_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something else"}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nb_mistral.store",
            "import",
            str(bad),
            "--store",
            str(tmp_path / "s"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "not an nb_mistral record export" in done.stderr


def test_import_marks_a_streaming_record_interrupted(tmp_path: Path) -> None:
    store = new_store(tmp_path / "replies.sqlite3")
    line = {
        "format": "nb_mistral.record/1",
        "id": "cd" * 16,
        "created": "2026-01-01T00:00:00+00:00",
        "server_url": "http://user:pw@h/x?token=1",
        "endpoint": "/v1/chat/completions",
        "status": "streaming",
        "request": {"model": "m", "messages": []},
        "events": [[0.5, '{"id":"x","model":"m","choices":[]}']],
    }
    assert store.import_records([line]) == 1
    record = store.get("cd")
    assert record is not None and record.status is RecordStatus.INTERRUPTED
    assert record.server_url == "http://h/x"
    store.close()


def test_request_key() -> None:
    body = chat_body("hi", temperature=0.2)
    key = request_key("http://h:1", "/v1/chat/completions", body)
    same = {**dict(reversed(list(body.items()))), "stream": False}
    assert request_key("http://h:1/", "/v1/chat/completions", same) == key
    assert request_key("http://h:1/v1", "/v1/chat/completions", body) == key
    assert request_key("http://u:p@H:1?q=1", "/v1/chat/completions", body) == key
    assert request_key("http://h:2", "/v1/chat/completions", body) != key
    assert request_key("http://h:1", "/v1/chat/completions", {**body, "temperature": 0.3}) != key
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    assert clean_server_url("HTTPS://key:secret@API.example.com:8443/base/?k=v#f") == (
        "https://api.example.com:8443/base"
    )


def test_cache_mode_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NB_MISTRAL_CACHE", raising=False)
    assert CacheMode.from_env() is CacheMode.OFF
    monkeypatch.setenv("NB_MISTRAL_CACHE", " Only ")
    assert CacheMode.from_env() is CacheMode.ONLY
    assert CacheMode.parse(True) is CacheMode.REPLAY and CacheMode.parse(False) is CacheMode.OFF
    assert CacheMode.parse("replay") is CacheMode.REPLAY
    with pytest.raises(ValueError, match="off, replay, only"):
        CacheMode.parse("sometimes")
