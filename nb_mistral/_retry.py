"""When to try a request again, and how long to wait first: decisions only, no I/O.

The client's sync and async loops each make one attempt, describe how it failed (an error
status, or a transport failure and how far the request got), and ask ``RetryPolicy.decide``:
wait so many seconds and try again, or give up (None). The policy never sleeps itself; its
``sleep`` / ``async_sleep`` and ``clock`` are injectable, so tests run on a fake clock.

What is retried: 429, 500, 502, 503, 504, and connections that failed before the request went
out or that the server dropped without an answer. What is not: any other status, anything once
the body began (a reply is never duplicated or spliced), and a read timeout once the request
was sent (the server may be working on it: a retry would bill twice).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Progress(enum.Enum):
    """How far a failed attempt got, as far as a retry is concerned."""

    NOT_SENT = "the request was not sent"  # connect failure or timeout, no pooled connection
    DROPPED = "the server dropped the connection without an answer"
    AWAITING_ANSWER = "the request was sent and the server may be working on it"
    BODY_BEGAN = "the reply's body had begun"
    UNSENDABLE = "the request cannot be sent as it is"  # a local protocol error, a bad URL


def progress_of(error: httpx.HTTPError, *, body_began: bool = False) -> Progress:
    """Classify a transport failure (httpx's exception types say where it happened)."""
    if body_began:
        return Progress.BODY_BEGAN
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Progress.NOT_SENT
    if isinstance(error, httpx.ReadTimeout):
        return Progress.AWAITING_ANSWER
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return Progress.DROPPED
    if isinstance(error, httpx.WriteTimeout):  # the request never went out whole
        return Progress.NOT_SENT
    return Progress.UNSENDABLE


@dataclass(frozen=True)
class ErrorStatus:
    """The server answered with an error status (before any body of a reply)."""

    status_code: int
    retry_after: str | None = None


@dataclass(frozen=True)
class TransportFailure:
    """No usable answer arrived."""

    progress: Progress


Outcome = ErrorStatus | TransportFailure

_RETRIED_PROGRESS = frozenset({Progress.NOT_SENT, Progress.DROPPED})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring ``Retry-After`` (seconds or an HTTP date),
    every wait capped. Give ``Mistral(max_retries=RetryPolicy(...))`` to change it."""

    max_retries: int = 2
    backoff: float = 0.5  # the first wait, doubled at each attempt
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25  # each backoff is scaled by a random factor in [1 - jitter, 1 + jitter]
    clock: Callable[[], float] = field(default=time.time, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)

    def decide(self, attempt: int, outcome: Outcome) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 0), or None to
        give up."""
        if attempt >= self.max_retries:
            return None
        if isinstance(outcome, TransportFailure):
            return self.backoff_delay(attempt) if outcome.progress in _RETRIED_PROGRESS else None
        if outcome.status_code not in RETRY_STATUSES:
            return None
        after = self.retry_after(outcome.retry_after)
        return after if after is not None else self.backoff_delay(attempt)

    def backoff_delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * 2.0**attempt)
        return base * (1 - self.jitter + 2 * self.jitter * self.random())

    def retry_after(self, value: str | None) -> float | None:
        """A ``Retry-After`` header as seconds from now, capped; None if absent or unreadable."""
        if not value or not value.strip():
            return None
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:  # "-0000": GMT all the same
                when = when.replace(tzinfo=datetime.timezone.utc)
            seconds = when.timestamp() - self.clock()
        if seconds != seconds:  # NaN
            return None
        return min(max(seconds, 0.0), self.max_retry_after)
