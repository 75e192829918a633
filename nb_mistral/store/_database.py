"""Opening the store file: WAL, a busy timeout, retried write transactions, and a corrupt file
moved aside rather than breaking a cell.

Many kernels write one file at once. Each write is one short ``BEGIN IMMEDIATE`` transaction
(so a reader never has to upgrade to a writer, the case SQLite cannot wait out), SQLite's busy
handler waits for the lock, and a write that still finds it busy is tried again with backoff.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ._schema import NewerSchemaError, migrate

R = TypeVar("R")

BUSY_TIMEOUT_MS = 5_000
LOCK_PATIENCE_SECONDS = 60.0


class StoreWarning(UserWarning):
    """The store could not do something; the cell goes on without it."""


def is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys on."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
        conn.execute("PRAGMA synchronous = NORMAL")  # survives a killed process, not power loss
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def retry_busy(work: Callable[[], R]) -> R:
    """Run ``work``, trying again while the database is busy (backoff with jitter)."""
    deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
    delay = 0.005
    while True:
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.25)


def write(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], R]) -> R:
    """``work`` in one ``BEGIN IMMEDIATE`` transaction, retried while the database is busy."""

    def attempt() -> R:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    return retry_busy(attempt)


def _prepare(path: Path) -> sqlite3.Connection:
    """Connect and bring the schema up to date; sqlite3 errors mean the file is unusable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = not path.exists()
    conn = connect(path)
    try:
        if fresh:
            with contextlib.suppress(OSError):
                path.chmod(0o600)  # prompts and replies are private
        write(conn, migrate)
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    path.rename(aside)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(OSError):
            companion.rename(aside.with_name(aside.name + suffix))
    return aside


def open_database(path: Path) -> sqlite3.Connection | None:
    """The ready connection, or None (after one warning) when no store can be had here."""
    try:
        return _prepare(path)
    except NewerSchemaError as exc:
        warnings.warn(f"nb_mistral: reply store {path} not used: {exc}", StoreWarning, 3)
        return None
    except (sqlite3.Error, OSError) as exc:
        if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
            warnings.warn(f"nb_mistral: reply store {path} is busy; not recording", StoreWarning, 3)
            return None
        reason = f"{type(exc).__name__}: {exc}"
    if not path.is_file():
        warnings.warn(
            f"nb_mistral: reply store {path} cannot be opened ({reason}); not recording",
            StoreWarning,
            3,
        )
        return None
    try:
        aside = _move_aside(path)
        conn = _prepare(path)
    except (sqlite3.Error, OSError) as exc:
        warnings.warn(
            f"nb_mistral: reply store {path} is unusable ({reason}) and no new one could be "
            f"made ({type(exc).__name__}: {exc}); not recording",
            StoreWarning,
            3,
        )
        return None
    warnings.warn(
        f"nb_mistral: reply store {path} was unreadable ({reason}); moved it to {aside.name} "
        "and started a new one",
        StoreWarning,
        3,
    )
    return conn
