"""Run the example notebooks top to bottom against the offline emulator and save their outputs.

    .venv/bin/python notebooks/execute.py                 # every notebook in notebooks/
    .venv/bin/python notebooks/execute.py 01-quickstart.ipynb

The outputs committed with the notebooks come from here: an in-process emulator (no key, no
network), ``MISTRAL_SERVER_URL`` pointing at it for the kernel, each notebook executed in place.
nbval (``notebooks/conftest.py``) replays them against the same emulator.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbclient.util import ensure_async

from nb_mistral.emulator import Emulator

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


def _emulator() -> Emulator:
    """On 127.0.0.1:8765, as with ``make demo``, so that re-runs print the same URL; any free
    port when that one is taken."""
    try:
        return Emulator(tokens_per_second=TOKENS_PER_SECOND, port=8765).start()
    except OSError:
        return Emulator(tokens_per_second=TOKENS_PER_SECOND).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = [Path(p) if Path(p).exists() else HERE / p for p in args.notebooks]
    paths = paths or sorted(HERE.glob("[0-9]*.ipynb"))
    with _emulator() as emulator:
        for path in paths:
            seconds = execute(path.resolve(), emulator.url, args.timeout)
            print(f"{path.name}: executed in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
