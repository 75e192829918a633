"""Rate and concurrency limits on chat completions, answered like the real API (429).

Both run on the server's loop only, so they need no locks; what tests read (the peak number
of requests in flight) goes through the thread-safe recorder.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from ._recorder import Recorder

RETRY_AFTER_CONCURRENCY = 1


class RateLimiter:
    """At most ``per_second`` admissions per second, counted over a sliding window.

    The window holds ``max(1, floor(per_second))`` admissions and lasts as long as they take
    at that rate: one second for 5/s, two seconds for 0.5/s.
    """

    def __init__(
        self, per_second: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self._clock = clock
        self._admitted: deque[float] = deque()

    def admit(self) -> int | None:
        """None when admitted, else the whole seconds to wait (``Retry-After``, at least 1)."""
        rate = self.per_second
        if not rate or rate <= 0:
            return None
        room = max(1, math.floor(rate))
        window = room / rate
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - window:
            self._admitted.popleft()
        if len(self._admitted) < room:
            self._admitted.append(now)
            return None
        return max(1, math.ceil(self._admitted[0] + window - now))


class Slot:
    """One admitted request; ``release`` may be called early (before the last write) and
    again at the end: only the first call counts."""

    def __init__(self, gate: ConcurrencyGate) -> None:
        self._gate: ConcurrencyGate | None = gate

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.leave()


class ConcurrencyGate:
    """Counts chat requests in flight; past ``limit`` (if set) a request is refused."""

    def __init__(self, limit: int | None, recorder: Recorder) -> None:
        self.limit = limit
        self._recorder = recorder
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def enter(self) -> Slot | None:
        """A slot, or None when ``limit`` requests are already in flight."""
        if self.limit and self._in_flight >= self.limit:
            return None
        self._in_flight += 1
        self._recorder.in_flight(self._in_flight)
        return Slot(self)

    def leave(self) -> None:
        self._in_flight -= 1
        self._recorder.in_flight(self._in_flight)
