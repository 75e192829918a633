"""``bench/bench_live.py --quick`` runs to the end and prints its tables (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_bench_live_quick() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISTRAL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_live.py"), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for heading in (
        "## IOPub traffic per reply",
        "## Time to the first visible update",
        "## Round trip of a trivial cell",
        "concurrent `--bg` replies in one kernel",
    ):
        assert heading in done.stdout, done.stdout
    assert "| 1,000 |" in done.stdout
    assert "10/10" in done.stdout  # every concurrent reply exact
