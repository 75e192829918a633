"""Benchmark: decoding a realistic Mistral chat stream, ours against the alternatives.

Run ``python bench/bench_stream.py`` (``--quick`` for a smoke run). Contenders, sync and async:
the official ``mistralai`` SDK's EventStream, httpx-sse plus pydantic, our EventStream, the
floor (``CompletionChunk.model_validate_json`` on the pre-split data lines: the validation
that any typed client must pay), and two references that are not parsers: the fastest our design
could be, with every check of a real parser left out (the ceiling), and our one-call-per-chunk
validation alone, on data split in advance. Then our EventStream on 1-byte chunks of growing
streams, to show time linear in the stream length.

The bytes go through real ``httpx.Response`` / ``httpx2.Response`` objects with iterator content:
everything above the socket is measured, the socket is not (no network, no server).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import random
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import httpx
import httpx2
import httpx_sse
from mistralai.client import models as sdk_models
from mistralai.client.utils import eventstreaming as sdk_streaming
from mistralai.client.utils.unmarshal_json_response import unmarshal_json_response

from nb_mistral import CompletionChunk, CompletionEvent, EventStream, EventStreamAsync

URL = "https://api.mistral.ai/v1/chat/completions"
CHUNK = 1024
TARGET_SDK_SPEEDUP = 50.0
TARGET_FLOOR_SYNC = 1.35
TARGET_FLOOR_ASYNC = 1.6

TEXT = (
    "The quick brown fox jumps over the lazy dog . Here is a **short** answer , with `code` :"
    ' café naïve résumé 😀 🚀 日本語 “quotes” "escaped" back\\slash - 1 . 2 . 3 .'
)
WORDS = TEXT.split()
PADDING = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def chat_stream(n_events: int, seed: int = 0) -> bytes:
    """``n_events`` chunks as the API sends them, then ``data: [DONE]``.

    Real chunks carry the id, object, created, model, one choice and a ``p`` padding field of
    varying length; that puts them at about 250-350 bytes each, ``data: `` and ``\\n\\n``
    included (the size is printed with the results).
    """
    rnd = random.Random(seed)
    cid = f"{rnd.getrandbits(128):032x}"

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        obj = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": 1780944347,
            "model": "mistral-large-latest",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
            "p": PADDING[: rnd.randint(20, 62)],
        }
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        return b"data: " + text.encode() + b"\n\n"

    out = [event({"role": "assistant", "content": ""})]
    for i in range(n_events - 2):
        word = rnd.choice(WORDS)
        out.append(event({"content": ("\n\n" if i % 40 == 39 else " ") + word}))
    usage = {"prompt_tokens": 25, "total_tokens": 25 + n_events, "completion_tokens": n_events}
    out.append(event({"content": ""}, "stop", usage=usage))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def data_lines(body: bytes) -> list[bytes]:
    """The JSON of each event but [DONE], split out in advance (for the floor)."""
    return [block[6:] for block in body.split(b"\n\n") if block and block != b"data: [DONE]"]


def split(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


# -- Contenders: each takes the chunks and returns how many chunk objects it produced ---------


def _response(content: Any) -> httpx.Response:
    headers = {"content-type": "text/event-stream"}
    return httpx.Response(200, headers=headers, content=content, request=httpx.Request("POST", URL))


def _response2(content: Any) -> httpx2.Response:
    headers = {"content-type": "text/event-stream"}
    return httpx2.Response(
        200, headers=headers, content=content, request=httpx2.Request("POST", URL)
    )


def _sdk_decoder(response: httpx2.Response) -> Callable[[str], Any]:
    """As ``mistralai``'s ``chat.stream`` builds it."""
    return lambda raw: unmarshal_json_response(sdk_models.CompletionEvent, response, raw)


def sdk_sync(chunks: list[bytes]) -> int:
    response = _response2(iter(chunks))
    n = 0
    with sdk_streaming.EventStream(response, _sdk_decoder(response), sentinel="[DONE]") as s:
        for _ in s:
            n += 1
    return n


def httpx_sse_sync(chunks: list[bytes]) -> int:
    n = 0
    response = _response(iter(chunks))
    try:
        for sse in httpx_sse.EventSource(response).iter_sse():
            if sse.data == "[DONE]":
                break
            CompletionChunk.model_validate_json(sse.data)
            n += 1
    finally:
        response.close()
    return n


def ours_sync(chunks: list[bytes]) -> int:
    n = 0
    with EventStream(_response(iter(chunks)), CompletionEvent) as stream:
        for _ in stream:
            n += 1
    return n


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def sdk_async(chunks: list[bytes]) -> int:
    response = _response2(_aiter(chunks))
    n = 0
    stream = sdk_streaming.EventStreamAsync(response, _sdk_decoder(response), sentinel="[DONE]")
    async with stream as s:
        async for _ in s:
            n += 1
    return n


async def httpx_sse_async(chunks: list[bytes]) -> int:
    n = 0
    response = _response(_aiter(chunks))
    try:
        async for sse in httpx_sse.EventSource(response).aiter_sse():
            if sse.data == "[DONE]":
                break
            CompletionChunk.model_validate_json(sse.data)
            n += 1
    finally:
        await response.aclose()
    return n


async def ours_async(chunks: list[bytes]) -> int:
    n = 0
    async with EventStreamAsync(_response(_aiter(chunks)), CompletionEvent) as stream:
        async for _ in stream:
            n += 1
    return n


def unchecked_split(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The data of the events each chunk completes (no [DONE]), cut on LF LF and ``data: ``
    with no checks at all: no CR, comments, other fields, BOM, UTF-8 or sentinel position."""
    rest = b""
    for chunk in chunks:
        buffer = rest + chunk
        last = buffer.rfind(b"\n\n")
        if last < 0:
            rest = buffer
            continue
        datas = buffer[6:last].split(b"\n\ndata: ")
        rest = buffer[last + 2 :]
        if datas[-1] == b"[DONE]":
            datas.pop()
        if datas:
            yield datas


def _batch_validate() -> Callable[[list[bytes]], list[Any]]:
    """Our one-call validation of a chunk's events, as EventStream does it."""
    from nb_mistral import _fastpath

    validate = _fastpath.batch_validator(CompletionEvent).validate_json  # type: ignore[union-attr]
    opening, between, closing = _fastpath.OPEN, _fastpath.BETWEEN, _fastpath.CLOSE
    return lambda datas: validate(b"".join((opening, between.join(datas), closing)))


def batch_validation(batches: list[list[bytes]]) -> int:
    """Not a parser: our validation alone, on each chunk's data split in advance. What our
    design pays before any framing, httpx or iteration."""
    validate = _batch_validate()
    return sum(len(validate(datas)) for datas in batches)


def ceiling(chunks: list[bytes]) -> int:
    """Not a parser: what our design could reach at best, an unchecked split (no finish reason,
    no httpx either) and our validation."""
    validate = _batch_validate()
    return sum(len(validate(datas)) for datas in unchecked_split(chunks))


def floor(lines: list[bytes]) -> int:
    validate = CompletionChunk.model_validate_json
    for line in lines:
        validate(line)
    return len(lines)


# -- Timing -----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    mode: str
    best: float = float("inf")  # seconds for the whole stream
    events: int = 0


def _time_sync(fn: Callable[[Any], int], arg: Any) -> tuple[float, int]:
    gc.collect()
    start = time.perf_counter()
    n = fn(arg)
    return time.perf_counter() - start, n


async def _time_async(fn: Callable[[Any], Any], arg: Any) -> tuple[float, int]:
    gc.collect()
    start = time.perf_counter()
    n = await fn(arg)
    return time.perf_counter() - start, n


def compare(n_events: int, rounds: int) -> tuple[list[Result], int]:
    body = chat_stream(n_events)
    chunks = split(body, CHUNK)
    lines = data_lines(body)
    assert len(lines) == n_events
    sync_contenders: list[tuple[Result, Callable[[Any], int], Any]] = [
        (Result("mistralai SDK EventStream", "sync"), sdk_sync, chunks),
        (Result("httpx-sse + model_validate_json", "sync"), httpx_sse_sync, chunks),
        (Result("nb_mistral EventStream", "sync"), ours_sync, chunks),
        (Result("floor: model_validate_json on lines", "-"), floor, lines),
        (Result("ceiling: unchecked split + batch validation", "ref"), ceiling, chunks),
        (
            Result("batch validation alone, data split in advance", "ref"),
            batch_validation,
            list(unchecked_split(chunks)),
        ),
    ]
    async_contenders: list[tuple[Result, Callable[[Any], Any], Any]] = [
        (Result("mistralai SDK EventStreamAsync", "async"), sdk_async, chunks),
        (Result("httpx-sse aiter_sse + model_validate_json", "async"), httpx_sse_async, chunks),
        (Result("nb_mistral EventStreamAsync", "async"), ours_async, chunks),
    ]

    async def async_round() -> None:
        for result, fn, arg in async_contenders:
            elapsed, result.events = await _time_async(fn, arg)
            result.best = min(result.best, elapsed)

    loop = asyncio.new_event_loop()
    try:
        for _ in range(rounds):  # interleaved, so that a noisy moment hits everyone alike
            for result, fn, arg in sync_contenders:
                elapsed, result.events = _time_sync(fn, arg)
                result.best = min(result.best, elapsed)
            loop.run_until_complete(async_round())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())  # chunk iterators left at [DONE]
        loop.close()
    results = [r for r, _, _ in sync_contenders] + [r for r, _, _ in async_contenders]
    for result in results:
        if result.events != n_events:
            raise SystemExit(f"{result.name} decoded {result.events} events, not {n_events}")
    return results, len(body)


def linear(sizes_mb: Iterable[float]) -> list[tuple[float, int, int, float]]:
    """Our EventStream on 1-byte chunks: (MB, bytes, events, best seconds).

    Streams up to 1 MB are timed 3 times (best kept) so that a noisy moment on a shared machine
    does not pass for a trend; the 10 MB one once. The per-chunk costs of the generator and of
    httpx are included, as they would be on a slow network.
    """
    rows = []
    one = chat_stream(1000, seed=7)
    for mb in sizes_mb:
        size = int(mb * 1_000_000)
        body = (one[: -len(b"data: [DONE]\n\n")] * (size // len(one) + 1))[:size]
        body = body[: body.rfind(b"\n\n") + 2] + b"data: [DONE]\n\n"
        best, events = float("inf"), 0
        for _ in range(3 if mb <= 1 else 1):
            bytewise = (body[i : i + 1] for i in range(len(body)))
            elapsed, events = _time_sync(ours_sync, bytewise)
            best = min(best, elapsed)
        rows.append((mb, len(body), events, best))
    return rows


# -- Report -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1,000 events, 2 rounds, no 10 MB"
    )
    parser.add_argument("--events", type=int, default=None, help="default 3,000")
    parser.add_argument("--rounds", type=int, default=None, help="default 7")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 7)
    args.events = args.events or (1000 if args.quick else 3000)

    print("# nb_mistral stream benchmark\n")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"pydantic {version('pydantic')}, httpx {version('httpx')}, "
        f"mistralai {version('mistralai')} (httpx2 {version('httpx2')}), "
        f"httpx-sse {version('httpx-sse')}."
    )
    print(
        "Bytes are fed through real httpx.Response / httpx2.Response objects with iterator "
        "content: no sockets, no server.\n"
    )

    results, size = compare(args.events, rounds)
    by = {(r.name.split()[0], r.mode): r for r in results}
    floor_r = next(r for r in results if r.mode == "-")
    print(
        f"## {args.events} events ({size / args.events:.0f} bytes each on average, "
        f"{size / 1e6:.2f} MB) in {CHUNK}-byte chunks, best of {rounds} interleaved rounds\n"
    )
    print("| contender | mode | events/s | µs/event | × floor time | nb_mistral speed-up |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        ours = by[("nb_mistral", r.mode)] if r.mode in ("sync", "async") else None
        speedup = f"{r.best / ours.best:.1f}×" if ours is not None and ours is not r else ""
        print(
            f"| {r.name} | {r.mode} | {r.events / r.best:,.0f} | {r.best / r.events * 1e6:.2f} "
            f"| {r.best / floor_r.best:.2f} | {speedup} |"
        )

    checks = []
    for mode in ("sync", "async"):
        ours, sdk = by[("nb_mistral", mode)], by[("mistralai", mode)]
        checks.append(
            (
                f"{mode}: ≥{TARGET_SDK_SPEEDUP:g}× the SDK's events/s",
                sdk.best / ours.best,
                sdk.best / ours.best >= TARGET_SDK_SPEEDUP,
                "×",
            )
        )
    for mode, target in (("sync", TARGET_FLOOR_SYNC), ("async", TARGET_FLOOR_ASYNC)):
        ratio = by[("nb_mistral", mode)].best / floor_r.best
        checks.append((f"{mode}: ≤{target:g}× the floor's time", ratio, ratio <= target, "×"))
    print()
    for label, value, ok, unit in checks:
        print(f"- {'PASS' if ok else 'FAIL'} {label}: {value:.2f}{unit}")

    sizes = (0.1, 1.0) if args.quick else (0.1, 1.0, 10.0)
    print("\n## Linear time: nb_mistral EventStream on 1-byte chunks\n")
    print("| stream | bytes | events | seconds | s/MB | vs 0.1 MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    rows = linear(sizes)
    base = rows[0][3] / (rows[0][1] / 1e6)
    growth = 0.0
    for mb, nbytes, events, elapsed in rows:
        rate = elapsed / (nbytes / 1e6)
        growth = max(growth, rate / base)
        cells = [f"{mb:g} MB", f"{nbytes:,}", f"{events:,}", f"{elapsed:.2f}", f"{rate:.2f}"]
        print(f"| {' | '.join(cells)} | {rate / base:.2f} |")
    # Quadratic behaviour would show as ~10× per row; allow 2× for a noisy shared machine.
    ok = growth <= 2.0
    print(
        f"\n- {'PASS' if ok else 'FAIL'} time per MB roughly constant "
        f"(largest s/MB ≤ 2× the 0.1 MB one): {growth:.2f}×"
    )
    slow = [mb for mb, _, _, elapsed in rows if elapsed > 60]
    if slow:
        print(f"- note: the {slow[-1]:g} MB run took more than 60 s")
    failed = [label for label, _, ok_, _ in checks if not ok_] + ([] if ok else ["linear"])
    print(f"\n{'All targets met.' if not failed else 'Missed: ' + '; '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
