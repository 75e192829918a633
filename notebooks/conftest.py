"""nbval runs the example notebooks against nb_mistral's offline emulator.

    pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg

The emulator starts in this process before any kernel does, and ``MISTRAL_SERVER_URL`` points at
it; the kernels nbval starts inherit the environment (and a temp reply store, unless
``NB_MISTRAL_STORE`` names one), so the notebooks get the same deterministic
replies as the ones saved in them (``notebooks/execute.py`` made those). A key from the
environment is hidden from the kernels: the saved outputs are the emulator's.

nbval ignores ``update_display_data`` messages, yet the live view of ``%%mistral`` is one display
updated in place until the reply is complete. The shim below makes nbval apply those updates to
the cell's own display, as JupyterLab and nbclient do, so a cell is compared on its final reply.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from nb_mistral.emulator import Emulator
from nb_mistral.store import STORE_ENV, CacheMode

LIVE_ONLY_TAG = "nb-mistral-live-only"
_DISPLAY_ID = "nbval_display_id"
_UPDATES = "nbval_updates_display_id"

_emulator: Emulator | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _emulator
    if not getattr(config.option, "nbval", False):
        return
    if not os.environ.get(STORE_ENV):  # never the real home's store
        os.environ[STORE_ENV] = os.path.join(tempfile.mkdtemp(), "replies.sqlite3")
    if CacheMode.from_env() is CacheMode.ONLY:
        _skip_live_only_cells()
    else:
        _emulator = Emulator(tokens_per_second=None).start()
        os.environ["MISTRAL_SERVER_URL"] = _emulator.url
    os.environ.pop("MISTRAL_API_KEY", None)
    if not getattr(config.option, "nbval_kernel_name", None):
        config.option.nbval_current_env = True  # the kernel runs this interpreter
    _teach_nbval_display_updates()


def _skip_live_only_cells() -> None:
    """``make nbval-replay``: cache mode ``only``, no emulator, every reply from the reply store
    (``notebooks/replies.jsonl``). Cells tagged ``nb-mistral-live-only`` reach a server by
    other ways than the notebook layer (the bare client, the official SDK, httpx, the model
    list): they are checked by the live run only."""
    from nbval import plugin

    plugin.metadata_tags[LIVE_ONLY_TAG] = "skip"


def pytest_unconfigure(config: pytest.Config) -> None:
    global _emulator
    if _emulator is not None:
        _emulator.stop()
        _emulator = None


def _teach_nbval_display_updates() -> None:
    """Patch nbval (0.11) so that ``update_display_data`` replaces the data of the display it
    names, within the cell being run. Updates from a cell's background task after that cell
    ended belong to that cell and are not seen, as in any headless run."""
    from nbval import plugin

    if getattr(plugin.IPyNbFile, "_nb_mistral_patched", False):
        return
    get_kernel_message = plugin.IPyNbFile.get_kernel_message
    compare_outputs = plugin.IPyNbCell.compare_outputs

    def get_message(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        msg = get_kernel_message(self, *args, **kwargs)
        content = msg.get("content") or {}
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id is None or msg.get("msg_type") not in ("display_data", "update_display_data"):
            return msg
        mark = _UPDATES if msg["msg_type"] == "update_display_data" else _DISPLAY_ID
        metadata = {**(content.get("metadata") or {}), mark: display_id}
        # nbval keeps display_data's data and metadata (metadata is never compared)
        return {**msg, "msg_type": "display_data", "content": {**content, "metadata": metadata}}

    def compare(self: Any, test: list[Any], ref: list[Any], *args: Any, **kwargs: Any) -> Any:
        return compare_outputs(self, _apply_updates(test), ref, *args, **kwargs)

    plugin.IPyNbFile.get_kernel_message = get_message
    plugin.IPyNbCell.compare_outputs = compare
    plugin.IPyNbFile._nb_mistral_patched = True


def _apply_updates(outputs: list[Any]) -> list[Any]:
    shown: dict[str, Any] = {}
    result = []
    for out in outputs:
        metadata = out.get("metadata") or {}
        if _UPDATES in metadata:
            target = shown.get(metadata[_UPDATES])
            if target is not None:
                target["data"] = out["data"]
            continue  # a display of an earlier cell: nothing shows in this one
        if _DISPLAY_ID in metadata:
            shown[metadata[_DISPLAY_ID]] = out
        result.append(out)
    return result
