"""Benchmark: the cost of one request through ``Mistral`` against a raw httpx keep-alive loop.

Run ``python bench/bench_requests.py`` (``--requests N``, ``--rounds R``). Both contenders stream
the same short reply from the in-process emulator (as fast as it can) over loopback, one request
after another, interleaved round by round; the best round of each is reported, as milliseconds
per request and as a ratio. The raw loop is the floor any client pays for the same HTTP work:
``httpx.Client.stream`` on one keep-alive connection, reading the body without parsing it.
``Mistral`` parses and validates every event on top of that. A third row, not a contender, splits
the difference: Mistral's request path (retry loop, auth, pooled client) with the body read raw,
as the raw loop reads it; what is left is the parsing and validation of the events.

Connections are counted on the client side, with httpcore's trace hook put on each request by an
httpx event hook: each contender should open exactly one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from nb_mistral import Mistral, UserMessage
from nb_mistral._request import chat_body
from nb_mistral._resources import CHAT_PATH
from nb_mistral.emulator import Emulator

MODEL = "mistral-small-latest"
PROMPT = "Say hello"
MAX_TOKENS = 20
TARGET_RATIO = 1.15
REQUEST_PATH = "ref: Mistral's request path, body read raw"


class ConnectionCounter:
    """Counts the TCP connections an httpx client opens (httpcore's ``trace`` extension)."""

    def __init__(self) -> None:
        self.connections = 0

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.connections += 1

    def hook(self, request: httpx.Request) -> None:
        request.extensions["trace"] = self._trace

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self.hook]}, timeout=30.0)


def raw_loop(client: httpx.Client, url: str, count: int) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "stream": True,
    }
    headers = {"Accept": "text/event-stream"}
    for _ in range(count):
        with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
            for _chunk in r.iter_raw():
                pass


def mistral_loop(client: Mistral, count: int) -> None:
    messages = [UserMessage(content=PROMPT)]
    for _ in range(count):
        with client.chat.stream(model=MODEL, messages=messages, max_tokens=MAX_TOKENS) as stream:
            for _event in stream:
                pass


def request_path_only(client: Mistral, count: int) -> None:
    """Mistral's request path, the body then read raw: no parsing, no validation."""
    body = chat_body(MODEL, [UserMessage(content=PROMPT)], True, {"max_tokens": MAX_TOKENS})
    for _ in range(count):
        response = client._send("POST", CHAT_PATH, body, lambda response: response)
        for _chunk in response.iter_raw():
            pass
        response.close()


def timed(run: Callable[[int], None], count: int) -> float:
    start = time.perf_counter()
    run(count)
    return (time.perf_counter() - start) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    raw_counter, mistral_counter = ConnectionCounter(), ConnectionCounter()
    with Emulator() as emulator:
        raw_client = raw_counter.client()
        mistral = Mistral(server_url=emulator.url, client=mistral_counter.client())
        contenders: dict[str, Callable[[int], None]] = {
            "raw httpx.Client keep-alive loop": lambda n: raw_loop(raw_client, emulator.url, n),
            "Mistral.chat.stream": lambda n: mistral_loop(mistral, n),
            REQUEST_PATH: lambda n: request_path_only(mistral, n),
        }
        for run in contenders.values():  # warm-up: imports, validators, the connection
            run(20)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, run in contenders.items():
                times[name].append(timed(run, args.requests))
        total = (args.rounds * args.requests + 20) * len(contenders)
        seen = emulator.request_count
        raw_client.close()
        mistral.close()

    best = {name: min(values) for name, values in times.items()}
    raw, ours = best["raw httpx.Client keep-alive loop"], best["Mistral.chat.stream"]
    ratio = ours / raw
    print("# nb_mistral per-request benchmark\n")
    print(
        f"{args.requests} requests per round, best of {args.rounds} interleaved rounds, "
        f"against the in-process emulator (as fast as possible, max_tokens={MAX_TOKENS}); "
        f"httpx {httpx.__version__}, Python {sys.version.split()[0]}.\n"
    )
    print("| contender | ms/request (best) | ms/request (median) | connections |")
    print("|---|---:|---:|---:|")
    counts = {
        "raw httpx.Client keep-alive loop": raw_counter.connections,
        "Mistral.chat.stream": mistral_counter.connections,
    }
    for name, values in times.items():
        count = counts.get(name, "(shared)")
        print(
            f"| {name} | {best[name] * 1e3:.3f} | {statistics.median(values) * 1e3:.3f} | {count} |"
        )
    print(f"\nrequests the server saw: {seen} (sent: {total})")
    medians = {name: statistics.median(values) for name, values in times.items()}
    median_ratio = medians["Mistral.chat.stream"] / medians["raw httpx.Client keep-alive loop"]
    print(
        f"- medians: Mistral / raw {median_ratio:.2f}×; "
        f"request path alone / raw {best[REQUEST_PATH] / raw:.2f}× (best)"
    )
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"- {verdict} Mistral / raw time per request: {ratio:.2f}× (target ≤ {TARGET_RATIO}×)")
    reused = counts["Mistral.chat.stream"] <= max(1, counts["raw httpx.Client keep-alive loop"])
    print(f"- {'PASS' if reused else 'FAIL'} connections reused as by the raw loop: {counts}")
    return 0 if ratio <= TARGET_RATIO and reused else 1


if __name__ == "__main__":
    sys.exit(main())
