"""What ``%mistral history`` and ``%mistral show ID`` display: recorded replies, through the
same renderer as live ones (prompts, models and answers are untrusted text: escaped and
sanitised for HTML, defanged for plain text)."""

from __future__ import annotations

from collections.abc import Sequence

from IPython.display import display

from ._live import LiveView
from ._render import plain, text_html, wrap
from ._reply import Reply
from .store import Record

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
