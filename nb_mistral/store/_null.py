"""``NullStore``: the store turned off (``off``, or no usable file). It has the methods of a
``Store``, records nothing and finds nothing, so callers never branch on it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import CacheMiss
from ._key import CHAT_ENDPOINT
from ._mode import CacheMode
from ._record import Record
from ._recorder import Recorder


class NullStore:
    """The store turned off: records nothing, finds nothing."""

    enabled = False
    path = None

    def __repr__(self) -> str:
        return "<nb_mistral Store off>"

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
        return Recorder(None, server_url=server_url, endpoint=endpoint, body=body, key=key)

    def flush(self, timeout: float | None = 10.0) -> bool:
        return True

    def close(self) -> None:
        pass

    def lookup(self, key: str) -> Record | None:
        return None

    def find_replay(
        self,
        mode: CacheMode | str | None,
        key: str,
        body: Mapping[str, Any],
        *,
        refresh: bool = False,
    ) -> Record | None:
        if CacheMode.parse(mode) is CacheMode.ONLY:
            raise CacheMiss.for_request(body)
        return None

    def get(self, record_id: str) -> Record | None:
        return None

    def latest(self, notebook: str | None = None) -> Record | None:
        return None

    def history(
        self, limit: int | None = 20, search: str | None = None, notebook: str | None = None
    ) -> list[Record]:
        return []

    def export_records(self, notebook: str | None = None) -> Iterable[dict[str, Any]]:
        return []

    def import_records(self, items: Iterable[Mapping[str, Any]]) -> int:
        raise RuntimeError("the reply store is off: nothing to import into")
