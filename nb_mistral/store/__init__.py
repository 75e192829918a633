"""The reply store: every chat request recorded in SQLite as it streams, replayed through the
same ``EventStream`` path as a live reply, listed by ``history``, exported and imported.

How a request goes through it::

    store = open_store(setting)                   # path | "off" | None (NB_MISTRAL_STORE, default)
    key = request_key(server_url, CHAT_ENDPOINT, body)
    record = store.find_replay(mode, key, body)   # ``only`` and no record: CacheMiss
    if record is not None:                        # answered from the store, nothing sent
        stream = EventStream(replay_response(record, speed=None), CompletionEvent)
    else:
        recorder = store.recorder(server_url=server_url, body=body, key=key)
        stream = EventStream(recorder.tap(response), CompletionEvent)  # before reading the body
        ...
        recorder.finish(reply=reply)              # or error=exc; once
"""

from ._database import StoreWarning
from ._errors import CacheMiss
from ._key import CHAT_ENDPOINT, canonical_json, clean_server_url, request_key
from ._mode import CACHE_ENV, CacheMode
from ._null import NullStore
from ._record import Record, RecordedEvent, RecordStatus, records_to_pandas
from ._recorder import Recorder
from ._registry import STORE_ENV, history, open_store, store_path
from ._replay import REPLAY_HEADER, replay_response, replay_response_async
from ._schema import CURRENT_VERSION
from ._store import Store

__all__ = [
    "CACHE_ENV",
    "CHAT_ENDPOINT",
    "CURRENT_VERSION",
    "REPLAY_HEADER",
    "STORE_ENV",
    "CacheMiss",
    "CacheMode",
    "NullStore",
    "Record",
    "RecordStatus",
    "RecordedEvent",
    "Recorder",
    "Store",
    "StoreWarning",
    "canonical_json",
    "clean_server_url",
    "history",
    "open_store",
    "records_to_pandas",
    "replay_response",
    "replay_response_async",
    "request_key",
    "store_path",
]
