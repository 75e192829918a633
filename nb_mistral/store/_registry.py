"""Which store a setting names, one per file and process: ``open_store`` and ``history``.

``NB_MISTRAL_STORE=<path>`` or an explicit path picks the file (default
``~/.nb_mistral/replies.sqlite3``); ``off`` turns the store off. Stores are closed at exit (a
reply still streaming then is recorded as ``interrupted``); a forked child starts afresh.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path

from ._database import open_database
from ._null import NullStore
from ._record import Record
from ._store import Store

STORE_ENV = "NB_MISTRAL_STORE"
OFF = "off"


def default_path() -> Path:
    return Path.home() / ".nb_mistral" / "replies.sqlite3"


def store_path(value: str | os.PathLike[str] | None = None) -> Path | None:
    """The file a setting names: ``value``, else ``NB_MISTRAL_STORE``, else the default;
    None when it says ``off``."""
    chosen: str | os.PathLike[str] | None = value
    if chosen is None or (isinstance(chosen, str) and not chosen.strip()):
        chosen = os.environ.get(STORE_ENV) or None
    if chosen is None:
        return default_path()
    if isinstance(chosen, str) and chosen.strip().lower() == OFF:
        return None
    return Path(chosen).expanduser().absolute()


AnyStore = Store | NullStore

_stores: dict[Path | None, AnyStore] = {}
_stores_lock = threading.Lock()


def open_store(path: str | os.PathLike[str] | None = None, *, shared: bool = True) -> AnyStore:
    """The store a setting names (see ``store_path``), one per file and process (``shared``
    False: a new one, for tests). A file that cannot be used gives one warning and a fresh file
    (or, failing that, a ``NullStore``)."""
    resolved = store_path(path)
    with _stores_lock:
        store = _stores.get(resolved) if shared else None
        if store is None or (isinstance(store, Store) and store.closed):
            conn = open_database(resolved) if resolved is not None else None
            store = Store(resolved, conn) if resolved is not None and conn is not None else None
            store = store or NullStore()
            if shared:
                _stores[resolved] = store
        return store


def history(
    limit: int | None = 20,
    search: str | None = None,
    notebook: str | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
) -> list[Record]:
    """``nb_mistral.history``: recent records of the current store, newest first."""
    return open_store(store).history(limit=limit, search=search, notebook=notebook)


def _close_all() -> None:
    with _stores_lock:
        stores = list(_stores.values())
    for store in stores:
        store.close()


def _forget_in_child() -> None:
    """A forked child must not use its parent's connections or writer thread."""
    global _stores, _stores_lock
    _stores = {}
    _stores_lock = threading.Lock()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_forget_in_child)
