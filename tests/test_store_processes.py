"""Many processes and killed processes: the store file stays usable and tells what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from store_support import chat_body, new_store, record_live

from nb_mistral.emulator import Emulator
from nb_mistral.store import RecordStatus

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


STREAMER = """
import sys
sys.path.insert(0, sys.argv[3])
from store_support import chat_body, new_store, record_live
store = new_store(sys.argv[1])
record_live(store, sys.argv[2], chat_body("a long story to be cut short"))
print("finished", flush=True)
"""


def test_a_process_killed_mid_stream_leaves_a_partial_interrupted_record(tmp_path: Path) -> None:
    path = tmp_path / "replies.sqlite3"
    with Emulator(tokens_per_second=60) as emulator:
        child = _python(STREAMER, str(path), emulator.url, str(ROOT / "tests"))
        store = new_store(path)
        seen = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for text to reach the file, then kill
            records = store.history(limit=1)
            if records and len(records[0].text) >= 40:
                seen = records[0]
                break
            time.sleep(0.02)
        assert seen is not None, child.communicate()[1] if child.poll() is not None else "no text"
        assert seen.status is RecordStatus.STREAMING  # its writer is alive
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=10)  # reaped: its pid is gone
        assert "finished" not in out

        # the whole reply, for comparison
        emulator.tokens_per_second = None
        whole, _ = record_live(store, emulator.url, chat_body("a long story to be cut short"))
    later = new_store(path)  # as a later process would read it
    record = later.get(seen.id)
    assert record is not None
    assert record.status is RecordStatus.INTERRUPTED
    assert record.text.startswith(seen.text)
    full = "".join(event.data.choices[0].delta.text for event in whole)
    assert full.startswith(record.text) and len(record.text) < len(full)
    assert record.reply().text == record.text
    assert record.reply().error is not None
    store.close()
    later.close()


WRITER = """
import sys, time
from nb_mistral.store import open_store, RecordStatus
import json
path, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = open_store(path)
while time.time() < start:
    time.sleep(0.001)
for number in range(50):
    body = {"model": "m", "messages": [{"role": "user", "content": f"{name} {number}"}]}
    recorder = store.recorder(server_url="http://127.0.0.1:1", body=body)
    for word in range(20):
        chunk = {"id": "x", "model": "m", "choices": [
            {"index": 0, "delta": {"content": f"{name}-{number}-{word} "}, "finish_reason": None}]}
        recorder.event(json.dumps(chunk))
    recorder.event(json.dumps({"id": "x", "model": "m", "choices": [
        {"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]}))
    recorder.finish()
store.close()
print("ok")
"""


def test_four_processes_writing_fifty_replies_each_at_once(tmp_path: Path) -> None:
    path = tmp_path / "replies.sqlite3"
    start = time.time() + 1.5  # all begin together, once their imports are done
    children = [_python(WRITER, str(path), f"p{n}", str(start)) for n in range(4)]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "ok"
        assert err == ""  # no warning, no "database is locked"
    store = new_store(path)
    records = store.history(limit=None)
    assert len(records) == 200
    assert {record.status for record in records} == {RecordStatus.COMPLETE}
    for record in records:
        name, number = record.prompt.split()
        assert record.text == "".join(f"{name}-{number}-{word} " for word in range(20))
        assert record.finish_reason == "stop"
    store.close()


UNFINISHED = """
import sys
from nb_mistral.store import open_store
store = open_store(sys.argv[1])
recorder = store.recorder(server_url="http://h", body={"model": "m", "messages": []})
recorder.event('{"id": "x", "model": "m", "choices": [{"index": 0, "delta": {"content": "par"}}]}')
print(recorder.id)
"""


def test_a_process_that_exits_mid_stream_marks_the_record_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "replies.sqlite3"
    out, err = _python(UNFINISHED, str(path)).communicate(timeout=60)
    assert err == ""
    later = new_store(path)
    record = later.get(out.strip())
    later.close()
    assert record is not None
    assert record.status is RecordStatus.INTERRUPTED and record.text == "par"
