"""Export and import: records as JSON lines, small enough to commit beside a notebook.

Each line holds a record's fields and its events as ``[offset, data]`` pairs. Importing puts the
events back on the wire as ``data: ...`` frames, so an imported record replays like a recorded
one; records already in the store (same id) are skipped, so importing twice adds nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from . import _batch as batch
from ._database import write
from ._key import canonical_json, clean_server_url, request_key
from ._record import Record, RecordStatus, prompt_of, sse_frame
from ._redact import Redactor

FORMAT = "nb_mistral.record/1"


def record_to_dict(record: Record) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "id": record.id,
        "key": record.key,
        "created": record.created.isoformat(),
        "ended": record.ended.isoformat() if record.ended else None,
        "server_url": record.server_url,
        "endpoint": record.endpoint,
        "status": record.status.value,
        "model": record.model,
        "notebook": record.notebook,
        "cell_id": record.cell_id,
        "request": dict(record.request),
        "text": record.text,
        "thinking": record.thinking,
        "tool_calls": [dict(call) for call in record.tool_calls],
        "usage": dict(record.usage) if record.usage is not None else None,
        "finish_reason": record.finish_reason,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "events": [[event.offset, event.data] for event in record.events],
    }


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def _json_or_none(value: Any) -> str | None:
    return canonical_json(value) if value else None


def import_into(
    conn: sqlite3.Connection, items: Iterable[Mapping[str, Any]], *, search: bool
) -> int:
    """Insert the records not yet present, in one transaction."""
    redactor = Redactor()
    prepared = [_row(item, redactor) for item in items]

    def insert(conn: sqlite3.Connection) -> int:
        added = 0
        for row, frames, prompt, text in prepared:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO records (id, key, created, ended, server_url, endpoint, "
                "model, prompt, request, text, thinking, tool_calls, usage, finish_reason, "
                "status, error_type, error_message, notebook, cell_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if not cursor.rowcount:
                continue
            seq = int(cursor.lastrowid or 0)
            added += 1
            if frames[1]:
                batch.insert(conn, seq, 0, batch.pack(*frames))
            if search:
                conn.execute(
                    "INSERT INTO records_search (rowid, prompt, text) VALUES (?, ?, ?)",
                    (seq, prompt, text),
                )
        return added

    return write(conn, insert)


def _row(
    item: Mapping[str, Any], redactor: Redactor
) -> tuple[tuple[Any, ...], tuple[list[float], list[bytes]], str, str]:
    if item.get("format") != FORMAT:
        raise ValueError(f"not an nb_mistral record export line (format {item.get('format')!r})")
    request = dict(item["request"])
    server_url = clean_server_url(str(item["server_url"]))
    endpoint = str(item["endpoint"])
    status = RecordStatus(item["status"])
    if status is RecordStatus.STREAMING:
        status = RecordStatus.INTERRUPTED  # its writer is not here
    events = item.get("events") or ()
    offsets = [float(offset) for offset, _ in events]
    frames = (offsets, [redactor.data(sse_frame(str(data))) for _, data in events])
    prompt = redactor.text(prompt_of(request))
    text = redactor.text(str(item.get("text") or ""))
    row = (
        str(item["id"]),
        request_key(server_url, endpoint, request),
        _epoch(item["created"]),
        _epoch(item.get("ended")),
        server_url,
        endpoint,
        str(item.get("model") or request.get("model") or ""),
        prompt,
        redactor.text(canonical_json(request)),
        text,
        redactor.text(str(item.get("thinking") or "")),
        _json_or_none(item.get("tool_calls")),
        _json_or_none(item.get("usage")),
        item.get("finish_reason"),
        status.value,
        item.get("error_type"),
        redactor.text(item["error_message"]) if item.get("error_message") else None,
        item.get("notebook"),
        item.get("cell_id"),
    )
    return row, frames, prompt, text
