"""The store's schema and its migrations: ``PRAGMA user_version`` says which steps were applied.

A new file goes through the same steps as an old one, so every migration runs in every test.
Version 1 kept records and their streamed bytes; version 2 adds the notebook and cell of a
record and a full-text index over prompts and replies.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

V1 = """
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    created REAL NOT NULL,
    ended REAL,
    server_url TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    prompt TEXT NOT NULL DEFAULT '',
    request TEXT NOT NULL,
    text TEXT,
    thinking TEXT,
    tool_calls TEXT,
    usage TEXT,
    finish_reason TEXT,
    status TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    writer_pid INTEGER,
    writer_token TEXT
);
CREATE INDEX records_by_key ON records (key, status, created);
CREATE INDEX records_by_created ON records (created);
CREATE TABLE chunks (
    record_seq INTEGER NOT NULL REFERENCES records (seq) ON DELETE CASCADE,
    batch INTEGER NOT NULL,
    data BLOB NOT NULL,
    sizes BLOB NOT NULL,
    offsets BLOB NOT NULL,
    UNIQUE (record_seq, batch)
);
"""

V2 = """
ALTER TABLE records ADD COLUMN notebook TEXT;
ALTER TABLE records ADD COLUMN cell_id TEXT;
CREATE INDEX records_by_notebook ON records (notebook, created);
"""

V2_SEARCH = """
CREATE VIRTUAL TABLE records_search USING fts5 (prompt, text, tokenize = 'trigram');
INSERT INTO records_search (rowid, prompt, text)
    SELECT seq, prompt, coalesce(text, '') FROM records;
"""


def _v1(conn: sqlite3.Connection) -> None:
    _script(conn, V1)


def _v2(conn: sqlite3.Connection) -> None:
    _script(conn, V2)
    try:
        conn.execute("SAVEPOINT search")
        _script(conn, V2_SEARCH)
        conn.execute("RELEASE search")
    except sqlite3.OperationalError:  # an SQLite built without FTS5: search scans instead
        conn.execute("ROLLBACK TO search")
        conn.execute("RELEASE search")


def _script(conn: sqlite3.Connection, script: str) -> None:
    """``executescript`` would commit; these run inside the caller's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2)
CURRENT_VERSION = len(MIGRATIONS)


class NewerSchemaError(Exception):
    """The file was written by a newer nb_mistral; it is left alone."""


def migrate(conn: sqlite3.Connection, up_to: int = CURRENT_VERSION) -> int:
    """Apply the missing steps; call inside a write transaction. Returns the version found."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > CURRENT_VERSION:
        raise NewerSchemaError(
            f"schema version {found}, newer than this nb_mistral's {CURRENT_VERSION}"
        )
    for version in range(found + 1, up_to + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(f"PRAGMA user_version = {version}")
    return found


def has_search(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records_search'"
    ).fetchone()
    return row is not None
