"""The resumable hook: a cache consulted per request, so that running the same batch again
replays the items that finished and sends only the rest.

Anything with ``lookup`` and ``record`` will do; the reply store implements it once it lands.
The key is the exact request body (model, messages, options, ``stream``), never the API key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .._reply import Reply


@runtime_checkable
class ReplyCache(Protocol):
    """Where a batch looks for a finished reply before sending, and records one after."""

    def lookup(self, request: Mapping[str, Any]) -> Reply | None:
        """A complete reply for this request body, or None to send it."""
        ...

    def record(self, request: Mapping[str, Any], reply: Reply) -> None:
        """A reply that finished without error, for next time."""
        ...


def request_key(request: Mapping[str, Any]) -> str:
    """A canonical text of a request body (sorted keys), for caches keyed by a string."""
    return json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class MemoryCache:
    """A ``ReplyCache`` in a dict: resumes a batch within one session (and tests the hook)."""

    def __init__(self) -> None:
        self._replies: dict[str, Reply] = {}

    def lookup(self, request: Mapping[str, Any]) -> Reply | None:
        return self._replies.get(request_key(request))

    def record(self, request: Mapping[str, Any], reply: Reply) -> None:
        self._replies[request_key(request)] = reply

    def __len__(self) -> int:
        return len(self._replies)
