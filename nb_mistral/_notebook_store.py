"""The reply store seen from a notebook: where a reply was asked (notebook path, cell id),
the conversation ``-c`` continues after a restart, and the ``%mistral history`` / ``show`` /
``resume`` commands. Recorded replies go through the same renderer as live ones (prompts,
models and answers are untrusted: escaped and sanitised for HTML, defanged for plain text)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ._live import LiveView
from ._render import plain, text_html, wrap
from ._reply import Reply
from ._stored import StoreSetting, resolve_store
from .store import Record, store_path

STORE_COMMANDS = ("history", "show", "resume")
HEADERS = ("time", "model", "tokens", "status", "first line", "id")
ID_SHOWN = 12  # characters of a record id: enough for ``%mistral show`` to find it
LINE_SHOWN = 80


def first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= LINE_SHOWN else line[: LINE_SHOWN - 1] + "…"


def history_rows(records: Sequence[Record]) -> list[tuple[str, ...]]:
    """One row of text per record, newest first, as ``HEADERS`` names them."""
    return [
        (
            record.created.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            record.model,
            "" if record.tokens is None else str(record.tokens),
            record.status.value,
            first_line(record.prompt),
            record.id[:ID_SHOWN],
        )
        for record in records
    ]


def history_html(rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{name}</th>" for name in HEADERS)
    body = "".join(
        "<tr>" + "".join(f"<td>{text_html(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return wrap(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def history_text(rows: list[tuple[str, ...]]) -> str:
    table = [HEADERS, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(HEADERS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in table
    ]
    return plain("\n".join(line.rstrip() for line in lines))


def show_history(records: Sequence[Record]) -> None:
    if not records:
        print("No recorded replies (the reply store is empty, off, or nothing matched).")
        return
    rows = history_rows(records)
    bundle = {"text/html": history_html(rows), "text/plain": history_text(rows)}
    display(bundle, raw=True)  # type: ignore[no-untyped-call]


def show_record(record: Record, reply: Reply, max_updates_per_second: float) -> None:
    """A recorded reply in the live view, its status line saying ``replayed``."""
    reply.note_replay(record.id)
    view = LiveView(reply, max_updates_per_second=max_updates_per_second, background=True)
    view.start()
    view.finish()


def current_cell_id(shell: Any) -> str | None:
    """The id of the cell being run: JupyterLab and Notebook 7 send it in the execute
    request's metadata (``cellId``); elsewhere there is none."""
    header = getattr(shell, "parent_header", None) or {}
    cell_id = (header.get("metadata") or {}).get("cellId")
    return cell_id if isinstance(cell_id, str) and cell_id else None


def notebook_path(shell: Any) -> str | None:
    """This notebook's path: ipykernel puts it in ``__session__`` (from the front end)."""
    session = getattr(shell, "user_ns", {}).get("__session__")
    return session if isinstance(session, str) and session else None


def notebook_place() -> tuple[str | None, str | None]:
    """The notebook path and cell id of the running cell, for code outside ``%%mistral``."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return None, None
    return notebook_path(shell), current_cell_id(shell)


def store_in_use(store: StoreSetting) -> str:
    """The file replies are recorded in, or ``off`` (for ``%mistral config``)."""
    if store is not None and not isinstance(store, (str, os.PathLike)):
        return repr(store)
    path = store_path(store)
    return str(path) if path is not None else "off"


def last_conversation(store: StoreSetting, notebook: str | None) -> list[dict[str, Any]]:
    """The conversation of this notebook's last recorded reply (``-c`` after a restart)."""
    if notebook is None:
        return []
    record = resolve_store(store).latest(notebook=notebook)
    return record.messages if record is not None else []


def store_command(
    command: str, words: str, limit: int, store: StoreSetting, max_updates_per_second: float
) -> Reply | None:
    """``%mistral history [-n N] [TEXT]``, ``show ID``, ``resume ID``; the reply to continue
    (``resume``) comes back."""
    opened = resolve_store(store)
    if command == "history":
        show_history(opened.history(limit=limit, search=words or None))
        return None
    record = opened.get(words) if words else None
    if record is None:
        raise UsageError(f"%mistral {command} ID: no recorded reply has the id {words!r}")
    reply = record.reply()
    if command == "show":
        show_record(record, reply, max_updates_per_second)
        return None
    print(f"Resumed: the next %%mistral -c continues the conversation of {record.id[:8]}.")
    return reply
