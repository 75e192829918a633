"""``Store``: the reply store of one file.

Reads go through a connection per thread; writes go through the store's ``Writer`` thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _batch as batch
from ._database import StoreWarning, connect
from ._errors import CacheMiss
from ._key import CHAT_ENDPOINT
from ._mode import CacheMode
from ._process import writer_alive
from ._record import Chunks, Record, RecordStatus, derive_reply, dumped
from ._recorder import Recorder
from ._redact import Redactor
from ._schema import has_search
from ._writer import Writer

_MIN_TRIGRAM = 3

_COLUMNS = ", ".join(
    f"records.{name}"
    for name in [
        "seq",
        "id",
        "key",
        "created",
        "ended",
        "server_url",
        "endpoint",
        "model",
        "prompt",
        "request",
        "text",
        "thinking",
        "tool_calls",
        "usage",
        "finish_reason",
        "status",
        "error_type",
        "error_message",
        "writer_pid",
        "writer_token",
        "notebook",
        "cell_id",
    ]
)


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None


def _notebook_forms(notebook: str) -> list[str]:
    forms = [notebook]
    absolute = os.path.abspath(os.path.expanduser(notebook))
    if absolute != notebook:
        forms.append(absolute)
    return forms


class Store:
    """Records replies, finds complete ones for replay, and lists them."""

    enabled = True

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._search = has_search(conn)
        self._writer = Writer(conn, search=self._search, label=path.name)
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<nb_mistral Store {str(self.path)!r}>"

    @property
    def closed(self) -> bool:
        return self._closed

    # -- recording ------------------------------------------------------------------------

    def recorder(
        self,
        *,
        server_url: str,
        body: Mapping[str, Any],
        endpoint: str = CHAT_ENDPOINT,
        notebook: str | None = None,
        cell_id: str | None = None,
        secret: str | None = None,
        key: str | None = None,
    ) -> Recorder:
        """Begin recording a request (the body only, never headers). ``secret``: a key to
        redact should it ever show up in the body or the stream; ``key``: the request key, if
        already computed for ``find_replay``."""
        if notebook:
            notebook = os.path.abspath(os.path.expanduser(notebook))
        return Recorder(
            None if self._closed else self._writer,
            server_url=server_url,
            endpoint=endpoint,
            body=body,
            notebook=notebook,
            cell_id=cell_id,
            redactor=Redactor([secret]),
            key=key,
        )

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything recorded so far is in the file."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Unfinished records end as ``interrupted``; everything is written."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    # -- reading --------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._readers.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        try:
            return self._reader().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            warnings.warn(
                f"nb_mistral: reading the reply store failed ({type(exc).__name__}: {exc})",
                StoreWarning,
                3,
            )
            return []

    def lookup(self, key: str) -> Record | None:
        """The latest complete record of a request key (a refresh supersedes older ones), its
        stream loaded, ready to replay."""
        self._writer.flush()
        rows = self._query(
            f"SELECT {_COLUMNS} FROM records WHERE key = ? AND status = ? "
            "ORDER BY created DESC, seq DESC LIMIT 1",
            (key, RecordStatus.COMPLETE.value),
        )
        if not rows:
            return None
        record = self._record(rows[0])
        _ = record.chunks  # now, not later on an event loop
        return record

    def find_replay(
        self,
        mode: CacheMode | str | None,
        key: str,
        body: Mapping[str, Any],
        *,
        refresh: bool = False,
    ) -> Record | None:
        """What a request should be answered with under a cache mode: a record to replay, or
        None to ask the server. ``only`` raises ``CacheMiss`` rather than return None."""
        mode = CacheMode.parse(mode)
        if mode is CacheMode.OFF:
            return None
        found = None if refresh else self.lookup(key)
        if found is None and mode is CacheMode.ONLY:
            raise CacheMiss.for_request(body)
        return found

    def get(self, record_id: str) -> Record | None:
        """A record by id, or by an unambiguous prefix of it (as history shows them)."""
        prefix = record_id.strip().lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        self._writer.flush()
        rows = self._query(
            f"SELECT {_COLUMNS} FROM records WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
            (prefix, prefix + "g"),
        )
        return self._record(rows[0]) if len(rows) == 1 else None

    def latest(self, notebook: str | None = None) -> Record | None:
        """The newest complete record (of a notebook): the conversation to resume."""
        self._writer.flush()
        where, params = self._notebook_filter(notebook)
        rows = self._query(
            f"SELECT {_COLUMNS} FROM records WHERE status = ?{where} "
            "ORDER BY created DESC, seq DESC LIMIT 1",
            (RecordStatus.COMPLETE.value, *params),
        )
        return self._record(rows[0]) if rows else None

    def history(
        self, limit: int | None = 20, search: str | None = None, notebook: str | None = None
    ) -> list[Record]:
        """Records newest first; ``search`` matches prompts and replies (any case, any part of
        a word); ``notebook`` keeps one notebook's. ``limit`` None: all of them."""
        self._writer.flush()
        where, params = self._notebook_filter(notebook)
        last = f" LIMIT {int(limit)}" if limit is not None else ""
        if search and self._search and len(search) >= _MIN_TRIGRAM:
            # The index hands out its matches newest row first, so a common word stops after
            # ``limit`` of them instead of sorting every match.
            phrase = '"' + search.replace('"', '""') + '"'
            rows = self._query(
                f"SELECT {_COLUMNS} FROM records_search JOIN records ON seq = records_search.rowid"
                f" WHERE records_search MATCH ?{where} ORDER BY records_search.rowid DESC{last}",
                [phrase, *params],
            )
            rows.sort(key=lambda row: (row[3], row[0]), reverse=True)
        else:
            if search:
                clause, extra = self._scan_filter(search)
                where += clause
                params += extra
            rows = self._query(
                f"SELECT {_COLUMNS} FROM records WHERE 1{where} ORDER BY created DESC, seq DESC"
                + last,
                params,
            )
        return [self._record(row) for row in rows]

    def _notebook_filter(self, notebook: str | None) -> tuple[str, list[Any]]:
        if not notebook:
            return "", []
        forms = _notebook_forms(notebook)
        return f" AND notebook IN ({', '.join('?' for _ in forms)})", forms

    def _scan_filter(self, search: str) -> tuple[str, list[Any]]:
        """Search without the index (too short a text for trigrams, or no FTS5)."""
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return " AND (prompt LIKE ? ESCAPE '\\' OR text LIKE ? ESCAPE '\\')", [pattern, pattern]

    def _chunk_loader(self, seq: int) -> Callable[[], Chunks]:
        def load() -> Chunks:
            try:
                return batch.load(self._reader(), seq)
            except sqlite3.Error:
                return []

        return load

    def _record(self, row: tuple[Any, ...]) -> Record:
        (seq, rid, key, created, ended, server_url, endpoint, model, prompt, request, text,
         thinking, tool_calls, usage, finish_reason, status, error_type, error_message,
         writer_pid, writer_token, notebook, cell_id) = row  # fmt: skip
        state = RecordStatus(status)
        if state is RecordStatus.STREAMING and not self._still_streaming(
            rid, writer_pid, writer_token
        ):
            state = RecordStatus.INTERRUPTED
        load = self._chunk_loader(seq)
        calls: Any = json.loads(tool_calls) if tool_calls else []
        spent: Any = json.loads(usage) if usage else None
        if text is None:  # not finished: what had arrived
            chunks = load()
            derived, _ = derive_reply(chunks)
            text, thinking = derived.text, derived.thinking
            finish_reason, spent = derived.finish_reason, dumped(derived.usage)
            calls = dumped(derived.tool_calls)
            model = model or derived.model or ""
            load = lambda: chunks  # noqa: E731
        return Record(
            id=rid,
            key=key,
            created=_time(created) or datetime.now(timezone.utc),
            ended=_time(ended),
            server_url=server_url,
            endpoint=endpoint,
            model=model,
            prompt=prompt,
            text=text,
            thinking=thinking or "",
            finish_reason=finish_reason,
            status=state,
            error_type=error_type,
            error_message=error_message,
            notebook=notebook,
            cell_id=cell_id,
            request=json.loads(request),
            tool_calls=tuple(calls),
            usage=spent,
            load_chunks=load,
        )

    def _still_streaming(self, rid: str, pid: int | None, token: str | None) -> bool:
        if not writer_alive(pid, token):
            return False
        if pid == os.getpid():
            return rid in self._writer.streaming_ids()
        return True

    # -- transfer -------------------------------------------------------------------------

    def export_records(self, notebook: str | None = None) -> Iterable[dict[str, Any]]:
        """Every record (of a notebook), oldest first, as JSON-ready dicts."""
        from ._transfer import record_to_dict

        for record in reversed(self.history(limit=None, notebook=notebook)):
            yield record_to_dict(record)

    def import_records(self, items: Iterable[Mapping[str, Any]]) -> int:
        """Add exported records; ones already here (same id) are skipped. Returns how many were
        added."""
        from ._transfer import import_into

        self._writer.flush()
        return import_into(self._writer_connection(), items, search=self._search)

    def _writer_connection(self) -> sqlite3.Connection:
        return self._reader()
