"""Run the example notebooks top to bottom against the offline emulator and save their outputs.

    .venv/bin/python notebooks/execute.py                 # every notebook in notebooks/
    .venv/bin/python notebooks/execute.py 01-quickstart.ipynb
    .venv/bin/python notebooks/execute.py --record notebooks/replies.jsonl   # make replies

The outputs committed with the notebooks come from here: an in-process emulator (no key, no
network), ``MISTRAL_SERVER_URL`` pointing at it for the kernel, each notebook executed in place.
nbval (``notebooks/conftest.py``) replays them against the same emulator.

``--record FILE`` also records every reply in a fresh reply store and exports it to ``FILE``
(``python -m nb_mistral.store export``), with the emulator on the fixed URL ``RECORDED_URL``
(a request key includes the server URL): ``make nbval-replay`` then checks the notebooks in
cache mode ``only`` from that file, with no emulator running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbclient.util import ensure_async

from nb_mistral.emulator import Emulator
from nb_mistral.store import CACHE_ENV, STORE_ENV

HERE = Path(__file__).resolve().parent


class _Client(NotebookClient):
    """nbclient, plus the display updates that arrive after their cell has ended.

    A ``--bg`` reply streams on after its cell returned; JupyterLab keeps updating its output in
    place, and so does this client (nbclient alone drops messages of cells it is not running), so
    the saved notebook shows the finished reply where the user saw it.
    """

    async def _async_poll_output_msg(
        self, parent_msg_id: str, cell: nbformat.NotebookNode, cell_index: int
    ) -> None:
        assert self.kc is not None
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    return
            elif msg["header"]["msg_type"] == "update_display_data":
                display_id = msg["content"].get("transient", {}).get("display_id")
                if display_id:
                    self._update_display_id(display_id, msg)


def execute(path: Path, server_url: str, timeout: int) -> float:
    """Execute one notebook in place; return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    client = _Client(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    client.execute(env={**_kernel_env(), "MISTRAL_SERVER_URL": server_url})
    _tidy(nb)
    nbformat.write(nb, path)
    return time.monotonic() - started


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MISTRAL_API_KEY", None)  # the saved outputs are the emulator's
    env.pop("MISTRAL_SERVER_URL", None)
    return env


def _tidy(nb: Any) -> None:
    """Keep the diff of a re-run small: no per-run kernel details."""
    if not _has_widgets(nb):
        nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def _has_widgets(nb: Any) -> bool:
    return any(
        "application/vnd.jupyter.widget-view+json" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )


# A realistic pace, so that the saved status lines read like a real reply's ("... 4.9 s ·
# 41 tokens/s"), not like an instant one.
TOKENS_PER_SECOND = 40


FIXED_PORT = 8765
RECORDED_URL = f"http://127.0.0.1:{FIXED_PORT}"  # make nbval-replay sets the same


def _emulator(fixed: bool = False) -> Emulator:
    """On 127.0.0.1:8765, as with ``make demo``, so that re-runs print the same URL; any free
    port when that one is taken (unless ``fixed``: a recording needs that URL)."""
    try:
        return Emulator(tokens_per_second=TOKENS_PER_SECOND, port=FIXED_PORT).start()
    except OSError:
        if fixed:
            raise SystemExit(f"--record needs port {FIXED_PORT} free (stop make demo)") from None
        return Emulator(tokens_per_second=TOKENS_PER_SECOND).start()


def _record_into(out: Path) -> Callable[[], None]:
    """Kernels record into a fresh store; the returned call exports it to ``out``."""
    folder = tempfile.mkdtemp(prefix="nb_mistral_record_")
    os.environ[STORE_ENV] = os.path.join(folder, "replies.sqlite3")
    os.environ.pop(CACHE_ENV, None)

    def export() -> None:
        command = [sys.executable, "-m", "nb_mistral.store", "export", str(out)]
        subprocess.run(command, check=True)
        shutil.rmtree(folder, ignore_errors=True)

    return export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    parser.add_argument(
        "--record", metavar="JSONL", help="export every reply to this file (make replies)"
    )
    args = parser.parse_args(argv)
    paths = [Path(p) if Path(p).exists() else HERE / p for p in args.notebooks]
    paths = paths or sorted(HERE.glob("[0-9]*.ipynb"))
    export = _record_into(Path(args.record).resolve()) if args.record else None
    with _emulator(fixed=export is not None) as emulator:
        for path in paths:
            seconds = execute(path.resolve(), emulator.url, args.timeout)
            print(f"{path.name}: executed in {seconds:.1f} s", flush=True)
    if export is not None:
        export()
    return 0


if __name__ == "__main__":
    sys.exit(main())
