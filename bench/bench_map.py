"""Benchmark: ``nb_mistral.map`` against the loop a user would write, and the Batch API path's
client memory.

Run ``python bench/bench_map.py`` (``--items N``, ``--concurrency C``, ``--rounds R``,
``--memory-items M``, ``--quick``). The server is the emulator in its own process
(``python -m nb_mistral.emulator``), streaming short replies as fast as it can.

Throughput: ``N`` short streamed items at concurrency ``C``, side by side, round by round:
- the hand-written loop: one ``httpx.AsyncClient(limits=httpx.Limits(max_connections=C))``, an
  ``asyncio.Semaphore(C)`` and ``asyncio.gather``, reading the SSE lines and their JSON;
- ``nb_mistral.amap`` (on the running loop) and ``nb_mistral.map`` (its worker thread).
The best round of each is reported in items per second. Target: ``amap`` >= 2x the loop.

Memory: ``M`` items through ``backend="batch"`` (the JSONL written to a temporary file, uploaded,
the job polled, the output file read back line by line) in a fresh process; its peak RSS
(``ru_maxrss``) and the same process's RSS before the batch. Target: peak <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

import nb_mistral
from nb_mistral import Mistral

MODEL = "mistral-small-latest"
MAX_TOKENS = 8
THROUGHPUT_TARGET = 2.0
MEMORY_TARGET_MB = 150


@contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """``python -m nb_mistral.emulator --port 0`` in its own process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nb_mistral.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://\S+", line)
        if match is None:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(10)


def prompts(count: int) -> list[str]:
    return [f"item {n}" for n in range(count)]


async def hand_loop(url: str, items: list[str], concurrency: int) -> list[str]:
    """What a user writes: one client, a semaphore, gather; the SSE read line by line."""
    limits = httpx.Limits(max_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(prompt: str) -> str:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": MAX_TOKENS,
                "stream": True,
            }
            parts: list[str] = []
            async with semaphore, client.stream("POST", "/v1/chat/completions", json=body) as r:
                r.raise_for_status()
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    parts.append(chunk["choices"][0]["delta"].get("content") or "")
            return "".join(parts)

        return list(await asyncio.gather(*(one(p) for p in items)))


async def with_amap(url: str, items: list[str], concurrency: int) -> list[str]:
    client = Mistral(server_url=url)
    batch = await nb_mistral.amap(
        "{item}", items, client=client, model=MODEL, concurrency=concurrency,
        max_tokens=MAX_TOKENS, progress=False,
    )  # fmt: skip
    assert not batch.errors, batch.errors
    return batch.texts


def with_map(url: str, items: list[str], concurrency: int) -> list[str]:
    client = Mistral(server_url=url)
    batch = nb_mistral.map(
        "{item}", items, client=client, model=MODEL, concurrency=concurrency,
        max_tokens=MAX_TOKENS, progress=False,
    )  # fmt: skip
    assert not isinstance(batch, nb_mistral.BatchJob) and not batch.errors
    return batch.texts


def throughput(items: int, concurrency: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    data = prompts(items)
    with emulator_process() as url:
        contenders = {
            f"hand loop (1 AsyncClient, {concurrency} connections)": lambda: asyncio.run(
                hand_loop(url, data, concurrency)
            ),
            "nb_mistral.amap": lambda: asyncio.run(with_amap(url, data, concurrency)),
            "nb_mistral.map": lambda: with_map(url, data, concurrency),
        }
        reference: list[str] | None = None
        for _ in range(rounds):
            for name, run in contenders.items():
                start = time.perf_counter()
                texts = run()
                rate = items / (time.perf_counter() - start)
                best[name] = max(best.get(name, 0.0), rate)
                reference = reference or texts
                assert texts == reference, f"{name} got other texts"
    return best


MEMORY_SCRIPT = """
import resource, sys, nb_mistral
def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
before = rss_mb()
client = nb_mistral.Mistral(server_url=sys.argv[1])
items = (f"item {n}" for n in range(int(sys.argv[2])))
batch = nb_mistral.map("{item}", items, client=client, backend="batch", max_tokens=8,
                       model="mistral-small-latest", progress=False)
assert len(batch) == int(sys.argv[2]) and not batch.errors
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{before:.0f} {peak:.0f} {len(batch)}")
"""


def memory(items: int) -> tuple[float, float]:
    with emulator_process("--batch-seconds", "1") as url:
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, url, str(items)],
            capture_output=True, text=True, check=True, timeout=900,
        )  # fmt: skip
    before, peak, count = done.stdout.split()
    assert int(count) == items
    return float(before), float(peak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-items", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    args = parser.parse_args()
    if args.quick:
        args.items, args.rounds, args.memory_items = 120, 1, 2_000
    best = throughput(args.items, args.concurrency, args.rounds)
    print(f"\n{args.items} streamed items, concurrency {args.concurrency}, best of {args.rounds}")
    print("| contender | items/s | vs hand loop |")
    print("|---|---:|---:|")
    hand = next(iter(best.values()))
    for name, rate in best.items():
        print(f"| {name} | {rate:,.0f} | {rate / hand:.2f}x |")
    ratio = best["nb_mistral.amap"] / hand
    verdict = "PASS" if ratio >= THROUGHPUT_TARGET else "FAIL"
    print(f"amap / hand loop = {ratio:.2f}x (target >= {THROUGHPUT_TARGET}x): {verdict}")
    before, peak = memory(args.memory_items)
    verdict = "PASS" if peak <= MEMORY_TARGET_MB else "FAIL"
    print(
        f"\nBatch API path, {args.memory_items:,} items: client RSS {before:.0f} MB before, "
        f"peak {peak:.0f} MB (target <= {MEMORY_TARGET_MB} MB): {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
