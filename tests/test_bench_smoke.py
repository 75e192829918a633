"""The benchmark script still runs end to end (``--quick``); no timing is asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_stream.py"


def test_bench_quick_prints_the_tables() -> None:
    pytest.importorskip("httpx_sse")
    pytest.importorskip("mistralai")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| contender | mode | events/s | µs/event |" in out
    for name in ("mistralai SDK EventStream", "httpx-sse", "nb_mistral EventStreamAsync", "floor"):
        assert name in out
    assert out.count("PASS") + out.count("FAIL") == 5
    assert "| 1 MB |" in out
    assert "| 10 MB |" not in out  # --quick skips it
    assert "Task was destroyed" not in done.stderr


def test_request_bench_quick_uses_one_connection() -> None:
    """``bench_requests.py`` runs end to end; its connection count is checked, not its time."""
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH.with_name("bench_requests.py")),
            "--requests",
            "20",
            "--rounds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert "| raw httpx.Client keep-alive loop |" in out, done.stderr
    assert "| Mistral.chat.stream |" in out
    assert "- PASS connections reused as by the raw loop" in out
    assert "'Mistral.chat.stream': 1}" in out
