"""``rate_limit`` and ``max_concurrency``: the official 429 with Retry-After, and the peak
number of chat requests in flight the emulator saw."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from nb_mistral.emulator import Emulator

CHAT = "/v1/chat/completions"
RATE_LIMITED = {
    "object": "error",
    "message": "Rate limit exceeded",
    "type": "rate_limited",
    "param": None,
    "code": "1300",
}
Factory = Callable[..., Emulator]


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        **extra,
    }


def test_rate_limit_answers_429_with_retry_after(emulator_factory: Factory) -> None:
    emu = emulator_factory(rate_limit=5)
    with httpx.Client(base_url=emu.url) as client:
        started = time.monotonic()
        statuses = [client.post(CHAT, json=body()) for _ in range(8)]
        burst = time.monotonic() - started
        assert burst < 1.0, "the burst must fit in one window for this test to mean anything"
        assert [r.status_code for r in statuses] == [200] * 5 + [429] * 3
        refused = statuses[-1]
        assert refused.json() == RATE_LIMITED
        assert refused.headers["content-type"] == "application/json"
        retry_after = int(refused.headers["retry-after"])
        assert retry_after == 1
        # other routes are not limited
        assert client.get("/v1/models").status_code == 200
        time.sleep(retry_after)  # honouring Retry-After is enough to be served again
        assert client.post(CHAT, json=body()).status_code == 200
    assert emu.request_count == 8 + 1 + 1


def test_rate_limit_is_per_second_over_time(emulator_factory: Factory) -> None:
    emu = emulator_factory(rate_limit=20)
    served = 0
    started = time.monotonic()
    with httpx.Client(base_url=emu.url) as client:
        while time.monotonic() - started < 1.5:
            served += client.post(CHAT, json=body()).status_code == 200
    # a window of 1.5 s holds at most two full windows of 20
    assert 20 <= served <= 40


def test_max_concurrency_refuses_streams_past_the_limit(emulator_factory: Factory) -> None:
    emu = emulator_factory(max_concurrency=2, tokens_per_second=20)

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=emu.url, timeout=10) as client:

            async def one() -> httpx.Response:
                response = await client.post(CHAT, json=body(stream=True, max_tokens=10))
                return response

            return await asyncio.gather(*(one() for _ in range(5)))

    responses = asyncio.run(main())
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 429, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json() == RATE_LIMITED
    assert refused.headers["retry-after"] == "1"
    assert emu.peak_in_flight == 2


def test_peak_in_flight_counts_concurrent_streams(emulator_factory: Factory) -> None:
    emu = emulator_factory(tokens_per_second=50)

    async def main(n: int) -> list[str]:
        async with httpx.AsyncClient(base_url=emu.url, timeout=10) as client:

            async def one() -> str:
                async with client.stream("POST", CHAT, json=body(stream=True)) as response:
                    return (await response.aread()).decode()

            return await asyncio.gather(*(one() for _ in range(n)))

    texts = asyncio.run(main(6))
    assert all(t.endswith("data: [DONE]\n\n") for t in texts)
    assert emu.peak_in_flight == 6
    emu.reset()
    assert emu.peak_in_flight == 0
    asyncio.run(main(1))
    assert emu.peak_in_flight == 1


def test_a_client_that_waits_for_done_is_never_refused(emulator_factory: Factory) -> None:
    """The slot is given back before the last write: sequential streams at the limit pass."""
    emu = emulator_factory(max_concurrency=1)
    with httpx.Client(base_url=emu.url) as client, httpx.Client(base_url=emu.url) as other:
        for i in range(30):
            current = client if i % 2 else other  # two connections, never two at once
            with current.stream("POST", CHAT, json=body(stream=True)) as response:
                assert response.status_code == 200
                response.read()
    assert emu.peak_in_flight == 1


def test_abandoned_streams_give_their_slot_back(emulator_factory: Factory) -> None:
    emu = emulator_factory(max_concurrency=1, tokens_per_second=5)
    with httpx.Client(base_url=emu.url, timeout=10) as client:
        with client.stream("POST", CHAT, json=body(stream=True)) as response:
            next(response.iter_lines())
        assert emu.wait_for_disconnect(timeout=5)
        emu.tokens_per_second = None
        assert client.post(CHAT, json=body()).status_code == 200


def test_rate_limiter_windows_with_a_fake_clock() -> None:
    from nb_mistral.emulator._limits import RateLimiter

    now = [100.0]
    slow = RateLimiter(0.5, clock=lambda: now[0])
    assert slow.admit() is None
    assert slow.admit() == 2  # one request per two seconds
    now[0] += 1.5
    assert slow.admit() == 1
    now[0] += 0.5
    assert slow.admit() is None
    fast = RateLimiter(3, clock=lambda: now[0])
    assert [fast.admit() for _ in range(4)] == [None, None, None, 1]
    now[0] += 1.0
    assert fast.admit() is None
    assert RateLimiter(None).admit() is None
