"""The batch's shared backoff on a fake clock: one pause for everyone, AIMD concurrency, and a
retry policy that leaves 429 to the batch."""

from __future__ import annotations

import asyncio

from nb_mistral import RetryPolicy
from nb_mistral._batch._backoff import AdaptiveLimit
from nb_mistral._batch._pools import shared_backoff_policy
from nb_mistral._retry import ErrorStatus, Progress, TransportFailure


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_429_halves_once_per_pause_and_successes_grow_it_back_slowly() -> None:
    clock = FakeClock()
    pauses: list[tuple[float, float]] = []
    limit = AdaptiveLimit(16, clock=clock, on_pause=lambda a, b: pauses.append((a, b)))
    limit.throttled(2.0)
    limit.throttled(1.0)  # arrived together with the first: no second halving
    assert limit.limit == 8 and limit.paused_for == 2.0
    assert pauses == [(100.0, 102.0), (100.0, 102.0)]
    clock.now = 103.0
    assert limit.paused_for == 0
    limit.throttled(None)  # a new pause, no Retry-After: the default second
    assert limit.limit == 4 and limit.paused_for == 1.0
    for _ in range(4):
        limit.succeeded()
    assert 4.9 < limit.limit < 5.1  # one round of successes at 4 adds about one
    for _ in range(1000):
        limit.succeeded()
    assert limit.limit == 16  # never past the ceiling


def test_no_holder_starts_during_a_pause_and_at_most_limit_hold() -> None:
    async def main() -> list[str]:
        limit = AdaptiveLimit(2)
        events: list[str] = []

        async def worker(name: str) -> None:
            async with limit:
                events.append(f"start {name} {limit.in_flight}")
                await asyncio.sleep(0.05)

        limit.throttled(0.2)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.gather(*(worker(str(n)) for n in range(3)))
        events.append(f"waited {loop.time() - began >= 0.2}")
        return events

    events = asyncio.run(main())
    assert events[-1] == "waited True"
    assert all(int(event.split()[-1]) <= 1 for event in events[:-1])  # limit halved to 1


def test_policy_reports_429_and_leaves_the_rest_to_the_client_policy() -> None:
    reported: list[float | None] = []

    async def unpaused() -> None:
        return None

    base = RetryPolicy(max_retries=3, backoff=0.5, jitter=0.0)
    policy = shared_backoff_policy(base, reported.append, unpaused)
    assert policy.decide(0, ErrorStatus(429, "7")) is None
    assert reported == [7.0]
    assert policy.decide(0, ErrorStatus(503)) == 0.5
    assert policy.decide(1, TransportFailure(Progress.NOT_SENT)) == 1.0
    assert policy.decide(3, ErrorStatus(503)) is None
    assert policy.decide(0, ErrorStatus(400)) is None
