"""``bench/bench_map.py --quick`` runs end to end (no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_map.py"


def test_bench_map_quick_prints_both_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| nb_mistral.amap |" in done.stdout and "| nb_mistral.map |" in done.stdout
    assert "amap / hand loop =" in done.stdout
    assert "Batch API path, 2,000 items" in done.stdout
    assert "Task was destroyed" not in done.stderr
