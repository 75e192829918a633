"""What the emulator saw, kept thread-safe for tests that look from outside its thread.

The server's loop writes (requests, connections, abandoned streams, streams in flight); the
test's thread reads and waits. One condition variable guards all of it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it, kept for tests to inspect.

    File uploads are recorded without their body (``body == b""``): the file store holds the
    content, and a log of every upload would grow with the data.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes = field(repr=False)
    query: str = ""
    received_at: float = field(default_factory=time.monotonic, compare=False)  # time.monotonic


@dataclass(frozen=True)
class RateLimited:
    """One 429 the emulator sent: when (``time.monotonic``) and its ``Retry-After``."""

    at: float
    retry_after: int


class Recorder:
    """Requests, connections, disconnects and the peak of chat requests in flight."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._disconnects = 0
        self._connections = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        self._rate_limited: list[RateLimited] = []

    # -- written by the server -----------------------------------------------------------

    def request(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def rate_limited(self, retry_after: int) -> None:
        with self._changed:
            self._rate_limited.append(RateLimited(time.monotonic(), retry_after))

    def disconnect(self) -> None:
        with self._changed:
            self._disconnects += 1
            self._changed.notify_all()

    def connection(self) -> None:
        with self._changed:
            self._connections += 1

    def in_flight(self, count: int) -> None:
        with self._changed:
            self._in_flight = count
            self._peak_in_flight = max(self._peak_in_flight, count)

    # -- read by tests ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._changed:
            return len(self._requests)

    @property
    def rate_limits(self) -> list[RateLimited]:
        with self._changed:
            return list(self._rate_limited)

    @property
    def disconnects(self) -> int:
        with self._changed:
            return self._disconnects

    @property
    def connections(self) -> int:
        with self._changed:
            return self._connections

    @property
    def peak_in_flight(self) -> int:
        with self._changed:
            return self._peak_in_flight

    def wait_for_disconnect(self, timeout: float, count: int) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._disconnects < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def reset(self) -> None:
        with self._changed:
            self._requests.clear()
            self._rate_limited.clear()
            self._disconnects = 0
            self._connections = 0
            self._peak_in_flight = self._in_flight
