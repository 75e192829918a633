"""Benchmark: what the live view costs the front end, and what it leaves of the kernel.

Run ``python bench/bench_live.py`` (``--quick`` for a smoke run). Everything goes through a real
ipykernel started with ``jupyter_client``, read on IOPub as a front end reads it (see
``tests/kernel_harness.py``), against the in-process emulator:

1. IOPub messages and bytes per reply: ``%%mistral`` against a naive cell that updates a
   ``display_id`` with the whole Markdown on every delta, over the same stream, for 100, 1,000
   and 10,000 deltas.
2. Latency: from the emulator writing a chunk to the front end receiving the update that shows
   it (the emulator paced so that each chunk stands alone; both clocks are this machine's
   ``time.time()``; the emulator's writes are timestamped by a hook on its responder).
3. Responsiveness: round-trip time of a trivial cell (``1+1``) while a ``--bg`` reply streams at
   1,000 tokens/s, against the same cells with nothing streaming.
4. Concurrency: 100 ``--bg`` replies at once in one kernel; every text must be exact.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from kernel_harness import (
    Execution,
    KernelHarness,
    Msg,
    display_messages,
    max_in_window,
    reply_display_id,
    start_nb_kernel,
)

from nb_mistral.emulator import Emulator, build_reply
from nb_mistral.emulator import _server as emulator_server

CHAT = "/v1/chat/completions"
MODEL = "mistral-small-latest"
NOT_THE_REPLY = ("status", "execute_input")
SERVER_WINDOW = 3.0  # jupyter_server's rate_limit_window
SERVER_MSG_LIMIT = 1000.0  # jupyter_server's iopub_msg_rate_limit (messages per second)

NAIVE_CELL = """\
from IPython.display import Markdown, display
import nb_mistral
_h = display(Markdown(''), display_id=True)
_text = ''
with nb_mistral.Mistral().chat.stream(
    model={model!r}, messages=[{{'role': 'user', 'content': {prompt!r}}}], max_tokens={n}
) as _s:
    for _e in _s:
        _c = _e.data.choices[0].delta.content
        if isinstance(_c, str) and _c:
            _text += _c
            _h.update(Markdown(_text))
"""


# -- timestamps of the emulator's writes ------------------------------------------------------


class ChunkLog:
    """``time.time()`` of every chunk the emulator's responders write (a hook for this bench)."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []

    @contextmanager
    def installed(self) -> Iterator[ChunkLog]:
        original = emulator_server.Responder.send_chunk
        log = self.writes

        async def send_chunk(responder: Any, data: bytes) -> bool:
            ok = await original(responder, data)
            log.append((time.time(), data))
            return ok

        emulator_server.Responder.send_chunk = send_chunk  # type: ignore[method-assign]
        try:
            yield self
        finally:
            emulator_server.Responder.send_chunk = original  # type: ignore[method-assign]

    def first_content_write(self, since: int) -> tuple[float, float]:
        """(first body chunk, first chunk with answer text) wall times after ``since``."""
        writes = self.writes[since:]
        first_body = writes[0][0]
        for t, data in writes:
            if b'"content":"' in data and b'"content":""' not in data:
                return first_body, t
        raise AssertionError("no content chunk was written")


# -- measurements -----------------------------------------------------------------------------


@dataclass
class Traffic:
    messages: int
    bytes: int
    updates: int
    seconds: float
    exact: bool
    peak_rate: float  # messages per second, as jupyter_server's IOPub rate limit counts them


def reply_messages(harness: KernelHarness, ex: Execution) -> list[Msg]:
    """Every IOPub message the reply caused (the cell's busy/idle and echo left out)."""
    return [m for m in harness.messages(ex.msg_id) if m.msg_type not in NOT_THE_REPLY]


def peak_rate(msgs: list[Msg]) -> float:
    """The highest message rate jupyter_server's IOPub limit would see: messages other than
    status / comm_open / execute_input, counted over a sliding 3 s window, divided by 3."""
    counted = [m.t for m in msgs if m.msg_type not in ("status", "comm_open", "execute_input")]
    return max_in_window(counted, SERVER_WINDOW) / SERVER_WINDOW


def traffic(harness: KernelHarness, ex: Execution, exact: bool) -> Traffic:
    msgs = reply_messages(harness, ex)
    did = reply_display_id(msgs) if any(m.display_id for m in msgs) else None
    updates = len(display_messages(msgs, did)) if did else 0
    return Traffic(
        len(msgs), sum(m.nbytes for m in msgs), updates, ex.duration, exact, peak_rate(msgs)
    )


def expected_text(emu: Emulator) -> str:
    return build_reply([r for r in emu.requests if r.path == CHAT][-1].json).text


def measure_traffic(harness: KernelHarness, emu: Emulator, n: int) -> tuple[Traffic, Traffic]:
    prompt = f"Benchmark reply of {n} deltas"
    emu.tokens_per_second = None
    ex = harness.run(f"%%mistral -m {MODEL} --max-tokens {n}\n{prompt}", timeout=600)
    want = expected_text(emu)
    ours = traffic(harness, ex, harness.evaluate("_mistral.text") == want)
    harness.clear_log()
    ex = harness.run(NAIVE_CELL.format(model=MODEL, prompt=prompt, n=n), timeout=1200)
    naive = traffic(harness, ex, harness.evaluate("_text") == want)
    harness.clear_log()
    return ours, naive


def first_update_latency(
    harness: KernelHarness, emu: Emulator, chunks: ChunkLog, code: str
) -> tuple[float, float]:
    """(first body byte → first update, first content chunk → first update) in seconds."""
    since = len(chunks.writes)
    ex = harness.run(code, timeout=120)
    msgs = reply_messages(harness, ex)
    first_update = next(m for m in msgs if m.msg_type == "update_display_data")
    first_body, first_content = chunks.first_content_write(since)
    harness.clear_log()
    return first_update.wall - first_body, first_update.wall - first_content


def cell_round_trips(harness: KernelHarness, cells: int, spacing: float) -> list[float]:
    """Round trips of ``1+1`` cells started ``spacing`` seconds apart."""
    times = []
    start = time.monotonic()
    for i in range(cells):
        delay = start + i * spacing - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        times.append(harness.run("1+1").duration)
    return times


def concurrent_streams(
    harness: KernelHarness, emu: Emulator, count: int, tokens: int
) -> tuple[float, int, int, int]:
    """(wall seconds, exact replies, IOPub messages, IOPub bytes) for ``count`` --bg replies."""
    emu.reset()
    start = time.monotonic()
    ex = harness.run(
        "_replies = []\n"
        f"for _i in range({count}):\n"
        f"    get_ipython().run_cell_magic('mistral', f'--bg -m {MODEL} --max-tokens {tokens}',"
        " f'concurrent stream number {_i}')\n"
        "    _replies.append(_mistral)\n"
        "for _r in _replies:\n"
        "    await _r\n",
        timeout=600,
    )
    wall = time.monotonic() - start
    texts = harness.evaluate("{r.request_messages[-1]['content']: r.text for r in _replies}")
    bodies = {r.json["messages"][-1]["content"]: r.json for r in emu.requests if r.path == CHAT}
    exact = sum(
        1
        for prompt, text in texts.items()
        if prompt in bodies and text == build_reply(bodies[prompt]).text
    )
    errors = harness.evaluate("[repr(r.error) for r in _replies if r.error is not None]")
    if errors:
        print(f"errors: {errors[:3]}", file=sys.stderr)
    harness.wait_quiet(0.5)
    msgs = reply_messages(harness, ex)
    harness.clear_log()
    return wall, exact, len(msgs), sum(m.nbytes for m in msgs)


# -- output -----------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError


def rate(per_second: float) -> str:
    return f"{per_second:,.0f}" + (" !" if per_second > SERVER_MSG_LIMIT else "")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    sizes = [100, 1000] if args.quick else [100, 1000, 10_000]
    latency_runs = 3 if args.quick else 10
    cells = 5 if args.quick else 20
    concurrent = 10 if args.quick else 100

    print("# nb_mistral live view benchmark\n")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        "a real ipykernel read over IOPub; in-process emulator; "
        f"{'quick run' if args.quick else 'full run'}.\n"
    )
    chunks = ChunkLog()
    with Emulator() as emu, chunks.installed():
        harness = start_nb_kernel(emu.url)
        try:
            harness.run("%%mistral --max-tokens 5\nwarm up")
            harness.run(NAIVE_CELL.format(model=MODEL, prompt="warm up", n=5))
            harness.clear_log()
            exit_code = run_all(harness, emu, chunks, sizes, latency_runs, cells, concurrent)
        finally:
            harness.stop()
    return exit_code


def run_all(
    harness: KernelHarness,
    emu: Emulator,
    chunks: ChunkLog,
    sizes: list[int],
    latency_runs: int,
    cells: int,
    concurrent: int,
) -> int:
    ok = True

    # 1. traffic
    rows = []
    for n in sizes:
        ours, naive = measure_traffic(harness, emu, n)
        ok &= ours.exact and naive.exact
        rows.append(
            [
                n,
                ours.messages,
                size(ours.bytes),
                f"{ours.seconds:.2f} s",
                rate(ours.peak_rate),
                naive.messages,
                size(naive.bytes),
                f"{naive.seconds:.2f} s",
                rate(naive.peak_rate),
                f"{naive.bytes / max(ours.bytes, 1):.0f}×",
                "yes" if ours.exact and naive.exact else "NO",
            ]
        )
    print("## IOPub traffic per reply (as fast as the emulator streams)\n")
    print(
        table(
            [
                "deltas",
                "%%mistral msgs",
                "%%mistral bytes",
                "%%mistral cell",
                "%%mistral peak msgs/s",
                "naive msgs",
                "naive bytes",
                "naive cell",
                "naive peak msgs/s",
                "bytes saved",
                "exact",
            ],
            rows,
        )
    )
    print(
        "\nMessages: every IOPub message the reply caused (displays, updates, output), "
        "without the cell's busy/idle/echo. Bytes: all frames of those messages on the wire. "
        "Naive: `display(Markdown(''), display_id=True)` then `h.update(Markdown(text))` "
        "per delta over the same stream. Peak msgs/s: the most messages in any 3 s window, "
        "divided by 3, as jupyter_server counts them for its IOPub rate limit "
        f"({SERVER_MSG_LIMIT:.0f} msgs/s by default; `!` marks a rate over it, where the "
        "server stops forwarding output to the browser). Fewer naive messages than deltas "
        "means the kernel's IOPub socket dropped some past its high-water mark (this reader "
        "never drops: its queue is unbounded).\n"
    )

    # 2. latency of the first update
    emu.tokens_per_second = 5  # 200 ms between chunks: each write stands alone
    ours_lat = []
    naive_lat = []
    for i in range(latency_runs):
        ours_lat.append(
            first_update_latency(
                harness, emu, chunks, f"%%mistral -m {MODEL} --max-tokens 3\nlatency {i}"
            )
        )
        naive_lat.append(
            first_update_latency(
                harness,
                emu,
                chunks,
                NAIVE_CELL.format(model=MODEL, prompt=f"latency {i}", n=3),
            )
        )
    emu.tokens_per_second = None
    print(f"## Time to the first visible update ({latency_runs} runs, emulator at 5 tokens/s)\n")
    rows = []
    for name, values in (("%%mistral", ours_lat), ("naive", naive_lat)):
        from_content = [v[1] for v in values]
        from_body = [v[0] for v in values]
        rows.append(
            [
                name,
                ms(statistics.median(from_content)),
                ms(max(from_content)),
                ms(statistics.median(from_body)),
            ]
        )
    print(
        table(
            [
                "view",
                "first text chunk written → update received (median)",
                "(max)",
                "first body byte → update (median)",
            ],
            rows,
        )
    )
    print(
        "\nThe first body byte is the role-only chunk; the first text chunk follows 200 ms "
        "later, so the last column includes that pacing.\n"
    )

    # 3. responsiveness during a background stream
    spacing = 0.4
    idle = cell_round_trips(harness, cells, spacing)
    emu.tokens_per_second = 1000
    harness.run(f"%%mistral --bg -m {MODEL} --max-tokens 60000\nkeep streaming")
    harness.wait_for(
        lambda msgs: sum(1 for m in msgs if m.msg_type == "update_display_data") >= 3, 10
    )
    busy = cell_round_trips(harness, cells, spacing)
    streamed = harness.evaluate("[_mistral.deltas, _mistral.done]")
    bg_updates = sum(1 for m in harness.messages() if m.msg_type == "update_display_data")
    harness.run("_mistral._stop_button.click()\nawait _mistral")
    emu.tokens_per_second = None
    harness.wait_quiet(0.5)
    harness.clear_log()
    print(f"## Round trip of a trivial cell (`1+1`, {cells} cells, {spacing} s apart)\n")
    print(
        table(
            ["while", "median", "p95", "max"],
            [
                ["nothing streams", ms(statistics.median(idle)), ms(p95(idle)), ms(max(idle))],
                [
                    "a --bg reply streams at 1,000 tokens/s",
                    ms(statistics.median(busy)),
                    ms(p95(busy)),
                    ms(max(busy)),
                ],
            ],
        )
    )
    print(
        f"\nThe background reply had streamed {streamed[0]:,} deltas by the last cell "
        f"(done: {streamed[1]}) and sent {bg_updates} updates of its growing Markdown; it was "
        "then stopped with its Stop button. Round trip: from sending `execute_request` to "
        "having both the reply and the idle status.\n"
    )

    # 4. concurrency
    tokens = 200
    emu.tokens_per_second = 100
    wall, exact, msgs, nbytes = concurrent_streams(harness, emu, concurrent, tokens)
    emu.tokens_per_second = None
    ok &= exact == concurrent
    print(f"## {concurrent} concurrent `--bg` replies in one kernel\n")
    print(
        table(
            ["replies", "deltas each", "pace", "wall time", "exact texts", "IOPub msgs", "bytes"],
            [
                [
                    concurrent,
                    tokens,
                    "100 tokens/s",
                    f"{wall:.2f} s",
                    f"{exact}/{concurrent}",
                    msgs,
                    size(nbytes),
                ]
            ],
        )
    )
    print(
        f"\nOne cell starts them all and awaits them all; one reply alone takes "
        f"{tokens / 100:.0f} s at this pace.\n"
    )
    if not ok:
        print("SOME REPLIES WERE NOT EXACT", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
