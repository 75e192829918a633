"""The store benchmark still runs end to end (``--quick``); no timing is asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_store.py"


def test_bench_store_quick_prints_the_tables() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--records", "2000"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a target not met on a busy machine
    out = done.stdout
    for title in ("| EventStream + recording | sync |", "EventStreamAsync(replay_response)"):
        assert title in out
    assert "history over 2,000 records" in out and out.count("target") == 4
