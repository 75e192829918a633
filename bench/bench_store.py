"""Benchmark: what the reply store costs a stream, and how fast it answers.

Run ``python bench/bench_store.py`` (``--quick`` for a smoke run). Side by side in one run:

- decoding a 3,000-event chat stream through ``EventStream`` (sync and async) with and without
  recording it (``recorder.tap``), the recorder created and finished inside the timing; the
  writer thread's work (to the file) is timed apart, as it happens off the caller's thread;
- replaying the recorded stream through ``EventStream`` (events/s), and the ``lookup`` before it;
- ``history()`` over 100,000 records: the newest 20, a search, one notebook's.

The streams are ``bench_stream.chat_stream`` in 1 KB chunks through real ``httpx.Response``
objects; the store is a real file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_stream import CHUNK, URL, chat_stream, split

from nb_mistral import CompletionEvent, EventStream, EventStreamAsync
from nb_mistral.store import (
    Record,
    Store,
    open_store,
    replay_response,
    replay_response_async,
)

SERVER = "https://api.mistral.ai"
BODY = {
    "model": "mistral-large-latest",
    "messages": [{"role": "user", "content": "Write a long answer"}],
    "stream": True,
}
TARGET_OVERHEAD = 0.05
TARGET_OVERHEAD_MS = 2.0
TARGET_REPLAY_EPS = 100_000
TARGET_HISTORY_MS = 50.0
WORDS = "alpha beta gamma delta kernel notebook stream replay python model answer".split()  # noqa: SIM905


def _response(chunks: list[bytes]) -> httpx.Response:
    headers = {"content-type": "text/event-stream"}
    return httpx.Response(
        200, headers=headers, content=iter(chunks), request=httpx.Request("POST", URL)
    )


class _AsyncChunks:
    """Chunks as an async iterator with nothing to finalize (the reader stops at [DONE])."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


def _aresponse(chunks: list[bytes]) -> httpx.Response:
    headers = {"content-type": "text/event-stream"}
    request = httpx.Request("POST", URL)
    return httpx.Response(200, headers=headers, content=_AsyncChunks(chunks), request=request)


REPLY = SimpleNamespace(
    text="x" * 12_000, thinking="", tool_calls=[], usage={"completion_tokens": 3000},
    finish_reason="stop", model="mistral-large-latest", error=None,
)  # fmt: skip


# Each contender times itself, from before the stream opens to after finish() returns (inside the
# coroutine for async, so the event loop's own start and stop are not counted), and returns it.


def plain_sync(chunks: list[bytes]) -> float:
    start = time.perf_counter()
    with EventStream(_response(chunks), CompletionEvent) as stream:
        for _ in stream:
            pass
    return time.perf_counter() - start


def recorded_sync(chunks: list[bytes], store: Store) -> float:
    start = time.perf_counter()
    recorder = store.recorder(server_url=SERVER, body=BODY)
    with EventStream(recorder.tap(_response(chunks)), CompletionEvent) as stream:
        for _ in stream:
            pass
    recorder.finish(reply=REPLY)
    return time.perf_counter() - start


async def plain_async(chunks: list[bytes]) -> float:
    start = time.perf_counter()
    async with EventStreamAsync(_aresponse(chunks), CompletionEvent) as stream:
        async for _ in stream:
            pass
    return time.perf_counter() - start


async def recorded_async(chunks: list[bytes], store: Store) -> float:
    start = time.perf_counter()
    recorder = store.recorder(server_url=SERVER, body=BODY)
    async with EventStreamAsync(recorder.tap(_aresponse(chunks)), CompletionEvent) as stream:
        async for _ in stream:
            pass
    recorder.finish(reply=REPLY)
    return time.perf_counter() - start


def recording(chunks: list[bytes], store: Store, rounds: int) -> dict[str, list[float]]:
    """Interleaved rounds: each contender once per round; the writer drained between them."""
    times: dict[str, list[float]] = {
        name: [] for name in ("plain", "recorded", "aplain", "arecorded", "flush")
    }
    loop = asyncio.new_event_loop()
    contenders: list[tuple[str, Callable[[], float]]] = [
        ("plain", lambda: plain_sync(chunks)),
        ("recorded", lambda: recorded_sync(chunks, store)),
        ("aplain", lambda: loop.run_until_complete(plain_async(chunks))),
        ("arecorded", lambda: loop.run_until_complete(recorded_async(chunks, store))),
    ]
    for _ in range(rounds):
        random.shuffle(contenders)
        for name, run in contenders:
            gc.collect()
            times[name].append(run())
            flushed = time.perf_counter()
            store.flush()
            if "recorded" in name:
                times["flush"].append(time.perf_counter() - flushed)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    return times


async def _paced(chunks: list[bytes], gap: float) -> AsyncGenerator[bytes, None]:
    for chunk in chunks:
        await asyncio.sleep(gap)
        yield chunk


async def _loop_lag(chunks: list[bytes], store: Store, record: bool, gap: float) -> list[float]:
    """Stream ``chunks`` at network pace on the loop while a ticker measures how late it runs."""
    lateness: list[float] = []
    streaming = True

    async def ticker() -> None:
        while streaming:
            planned = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - planned)

    task = asyncio.ensure_future(ticker())
    request = httpx.Request("POST", URL)
    headers = {"content-type": "text/event-stream"}
    paced = _paced(chunks, gap)
    response = httpx.Response(200, headers=headers, content=paced, request=request)
    recorder = store.recorder(server_url=SERVER, body=BODY) if record else None
    if recorder is not None:
        response = recorder.tap(response)
    async with EventStreamAsync(response, CompletionEvent) as stream:
        async for _ in stream:
            pass
    await paced.aclose()  # stopped at [DONE]: closed here, not by a finalizer on a closed loop
    if recorder is not None:
        recorder.finish(reply=REPLY)
    await asyncio.sleep(0.02)  # the last write happens while the ticker still runs
    streaming = False
    await task
    return lateness


def loop_lag(chunks: list[bytes], store: Store, rounds: int) -> dict[str, tuple[float, float]]:
    """The kernel loop while a reply streams in at network pace, recorded or not: p99 and max
    lateness of a 1 ms ticker (the writer thread writes every 50 ms meanwhile)."""
    loop = asyncio.new_event_loop()
    lags: dict[str, list[float]] = {"not recorded": [], "recorded": []}
    for _ in range(max(1, rounds // 5)):
        for name in lags:
            lags[name] += loop.run_until_complete(
                _loop_lag(chunks, store, name == "recorded", 0.001)
            )
            store.flush()
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    result = {}
    for name, values in lags.items():
        values.sort()
        result[name] = (values[int(len(values) * 0.99)], values[-1])
    return result


def replaying(store: Store, rounds: int) -> tuple[float, float, float, int]:
    record = store.history(limit=1)[0]
    lookups, sync_times, async_times = [], [], []
    loop = asyncio.new_event_loop()
    count = 0
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        found = store.lookup(record.key)
        lookups.append(time.perf_counter() - start)
        assert found is not None
        gc.collect()
        start = time.perf_counter()
        with EventStream(replay_response(found), CompletionEvent) as stream:
            count = sum(1 for _ in stream)
        sync_times.append(time.perf_counter() - start)

        async def run(found: Record = found) -> int:
            async with EventStreamAsync(replay_response_async(found), CompletionEvent) as stream:
                return len([event async for event in stream])

        gc.collect()
        start = time.perf_counter()
        assert loop.run_until_complete(run()) == count
        async_times.append(time.perf_counter() - start)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    return min(lookups), min(sync_times), min(async_times), count


def _fake_line(number: int, rnd: random.Random) -> dict[str, Any]:
    words = " ".join(rnd.choice(WORDS) for _ in range(60))
    prompt = f"question {number}: " + " ".join(rnd.choice(WORDS) for _ in range(8))
    chunk = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": words}, "finish_reason": "stop"}],
    }
    return {
        "format": "nb_mistral.record/1",
        "id": f"{number:08x}" + f"{rnd.getrandbits(96):024x}",
        "created": 1.7e9 + number,
        "ended": 1.7e9 + number + 1,
        "server_url": SERVER,
        "endpoint": "/v1/chat/completions",
        "status": "complete",
        "model": "mistral-large-latest",
        "notebook": f"/work/nb{number % 50}.ipynb",
        "request": {
            "model": "mistral-large-latest",
            "messages": [{"role": "user", "content": prompt}],
        },
        "text": words,
        "usage": {"completion_tokens": 60},
        "finish_reason": "stop",
        "events": [[0.1, json.dumps(chunk)]],
    }


def populate(store: Store, count: int) -> float:
    rnd = random.Random(1)
    start = time.perf_counter()
    batch = 10_000
    for first in range(0, count, batch):
        store.import_records(_fake_line(n, rnd) for n in range(first, min(count, first + batch)))
    return time.perf_counter() - start


def histories(store: Store, rounds: int) -> dict[str, float]:
    queries: dict[str, Callable[[], Any]] = {
        "history()": lambda: store.history(),
        "history(search='question 4321')": lambda: store.history(search="question 4321"),
        "history(search='zebra') (no match)": lambda: store.history(search="zebra"),
        "history(notebook=...)": lambda: store.history(notebook="/work/nb7.ipynb"),
        "history(search='replay') (every record matches)": lambda: store.history(search="replay"),
    }
    columns = "seq, id, created, model, prompt, text, status"
    scan = (
        f"SELECT {columns} FROM records WHERE prompt LIKE ? OR text LIKE ? "
        "ORDER BY created DESC LIMIT 20"
    )
    conn = store._reader()
    queries["for comparison, no index: LIKE scan for 'question 4321'"] = lambda: conn.execute(
        scan, ("%question 4321%", "%question 4321%")
    ).fetchall()
    best: dict[str, float] = {}
    for name, query in queries.items():
        samples = []
        for _ in range(rounds):
            gc.collect()
            start = time.perf_counter()
            query()
            samples.append(time.perf_counter() - start)
        best[name] = min(samples)
    return best


def row(*cells: object) -> None:
    print("| " + " | ".join(str(cell) for cell in cells) + " |")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1,000 events, 2 rounds, 5,000 records"
    )
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    events = args.events or (1_000 if args.quick else 3_000)
    records = args.records or (5_000 if args.quick else 100_000)
    rounds = args.rounds or (2 if args.quick else 25)

    body = chat_stream(events)
    chunks = split(body, CHUNK)
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print(
        f"{events:,}-event stream ({len(body) / 1e6:.2f} MB) in {CHUNK}-byte chunks, "
        f"best of {rounds} interleaved rounds\n"
    )
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "bench.sqlite3", shared=False)
        assert isinstance(store, Store)
        times = recording(chunks, store, rounds)
        best = {name: min(values) for name, values in times.items()}
        row("decoding", "mode", "best ms", "median ms", "added ms (best)", "added %")
        row("---", "---", "---:", "---:", "---:", "---:")
        for mode, plain, recorded in (
            ("sync", "plain", "recorded"),
            ("async", "aplain", "arecorded"),
        ):
            added = best[recorded] - best[plain]
            share = added / best[plain]
            row("EventStream", mode, f"{best[plain] * 1e3:.2f}", _median(times[plain]), "", "")
            row(
                "EventStream + recording",
                mode,
                f"{best[recorded] * 1e3:.2f}",
                _median(times[recorded]),
                f"{added * 1e3:+.2f}",
                f"{share:+.1%}",
            )
            ok = share <= TARGET_OVERHEAD and added * 1e3 <= TARGET_OVERHEAD_MS
            failed |= not ok
            target = f"target ≤ {TARGET_OVERHEAD:.0%} and ≤ {TARGET_OVERHEAD_MS} ms"
            row(target, mode, "", "", "", verdict(ok))
        print(
            f"\nThe writer thread, after a recorded reply ends: flush waits "
            f"{best['flush'] * 1e3:.2f} ms best, {_median(times['flush'])} ms median "
            "(off the caller's thread)\n"
        )
        row("event loop, a reply streaming at 1 chunk/ms", "1 ms ticker late p99 ms", "max ms")
        row("---", "---:", "---:")
        for name, (p99, worst) in loop_lag(chunks, store, rounds).items():
            row(name, f"{p99 * 1e3:.2f}", f"{worst * 1e3:.2f}")
        print()

        lookup, sync_replay, async_replay, count = replaying(store, rounds)
        row("replay of the recorded stream", "events", "best ms", "events/s")
        row("---", "---:", "---:", "---:")
        row("lookup (latest complete record, stream loaded)", "", f"{lookup * 1e3:.2f}", "")
        slowest = max(sync_replay, async_replay)
        for name, seconds in (("", sync_replay), ("Async", async_replay)):
            rate = f"{count / seconds:,.0f}"
            row(f"EventStream{name}(replay_response)", f"{count:,}", f"{seconds * 1e3:.2f}", rate)
        ok = count / slowest >= TARGET_REPLAY_EPS
        failed |= not ok
        print(f"target ≥ {TARGET_REPLAY_EPS:,} events/s: {verdict(ok)}\n")
        store.close()

        big = open_store(Path(folder) / "history.sqlite3", shared=False)
        assert isinstance(big, Store)
        filled = populate(big, records)
        size = (Path(folder) / "history.sqlite3").stat().st_size / 1e6
        print(f"history over {records:,} records (filled in {filled:.1f} s; file {size:.0f} MB)")
        row("query", "best ms")
        row("---", "---:")
        slowest = 0.0
        for name, seconds in histories(big, rounds).items():
            if not name.startswith("for comparison"):
                slowest = max(slowest, seconds)
            row(name, f"{seconds * 1e3:.2f}")
        ok = slowest * 1e3 <= TARGET_HISTORY_MS
        failed |= not ok
        print(f"target ≤ {TARGET_HISTORY_MS:.0f} ms: {verdict(ok)}")
        big.close()
    return 1 if failed else 0


def _median(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.2f}"


if __name__ == "__main__":
    sys.exit(main())
