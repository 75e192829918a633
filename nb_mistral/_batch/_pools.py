"""The HTTP clients a live batch sends through: several small connection pools, and a retry
policy that leaves 429 to the batch's shared backoff.

httpx's async pool costs CPU per request that grows with its size (measured: about 10 ms at 64
connections against 3 ms at 16), so a batch spreads its workers over pools of at most
``POOL_SIZE`` connections, each one a ``Mistral`` client with the caller's key, server, timeout
and retry settings. Connections stay keep-alive within a batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from .._client import Mistral
from .._retry import ErrorStatus, Outcome, RetryPolicy

POOL_SIZE = 8  # measured (bench/bench_map.py, 64 in flight): 8 beat 4, 16 and 32


@dataclass(frozen=True)
class SharedBackoffPolicy(RetryPolicy):
    """The client's policy, except that a 429 is reported (with its ``Retry-After`` in
    seconds) and not retried here: the batch pauses every worker and sends it again."""

    on_rate_limit: Callable[[float | None], None] = field(default=lambda _: None, repr=False)

    def decide(self, attempt: int, outcome: Outcome) -> float | None:
        if isinstance(outcome, ErrorStatus) and outcome.status_code == 429:
            self.on_rate_limit(self.retry_after(outcome.retry_after))
            return None
        return super().decide(attempt, outcome)


def shared_backoff_policy(
    base: RetryPolicy,
    on_rate_limit: Callable[[float | None], None],
    wait_unpaused: Callable[[], Awaitable[None]],
) -> SharedBackoffPolicy:
    """``base`` with 429 left to the batch; a 5xx retry also waits out a shared pause."""
    sleep = base.async_sleep

    async def sleep_then_wait(seconds: float) -> None:
        await sleep(seconds)
        await wait_unpaused()

    settings = {f.name: getattr(base, f.name) for f in dataclasses.fields(RetryPolicy)}
    settings["async_sleep"] = sleep_then_wait
    return SharedBackoffPolicy(**settings, on_rate_limit=on_rate_limit)


class Pools:
    """``count`` clients sharing ``base``'s settings, each with its own pool (or, when the
    caller gave ``base`` an ``httpx.AsyncClient`` of their own, that one for all)."""

    def __init__(self, base: Mistral, count: int, policy: RetryPolicy) -> None:
        given = base._given_async_client
        self._owned: list[httpx.AsyncClient] = []
        self.clients: list[Mistral] = []
        for _ in range(max(1, count)):
            http = given
            if http is None:
                limits = httpx.Limits(
                    max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE
                )
                http = httpx.AsyncClient(limits=limits, timeout=base.timeout)
                self._owned.append(http)
            self.clients.append(
                Mistral(
                    api_key=base._secret,
                    server_url=base.server_url,
                    max_retries=policy,
                    async_client=http,
                )
            )

    @classmethod
    def for_concurrency(cls, base: Mistral, concurrency: int, policy: RetryPolicy) -> Pools:
        return cls(base, -(-concurrency // POOL_SIZE), policy)

    def for_worker(self, worker: int) -> Mistral:
        """Worker n's client: consecutive workers share a pool, ``POOL_SIZE`` per pool."""
        return self.clients[min(worker // POOL_SIZE, len(self.clients) - 1)]

    async def aclose(self) -> None:
        owned, self._owned = self._owned, []
        await asyncio.gather(*(http.aclose() for http in owned), return_exceptions=True)
