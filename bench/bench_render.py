"""Benchmark: what rendering a streaming reply costs the kernel, today's renderer against the one
it replaced (``_inert.py`` + ``_render.py`` at commit ``cfb2304``, extracted with ``git show``
into a temporary package, which re-rendered the whole reply on every update).

Run ``python bench/bench_render.py`` (``--quick`` for a smoke run):

1. Time per update for 1, 10 and 100 KB replies: one more token arrives, the view is rendered
   again (new: the incremental renderer, plus the ``text/plain`` part; old: ``reply_markdown``).
   The final, exact render (once per reply) is shown beside it.
2. A 100 KB reply streamed at 1,000 tokens/s through the live view's ``Throttle`` (at most 20
   updates a second, and at most ``RENDER_SHARE`` of the time): on a simulated clock that
   advances 1 ms per token plus the measured cost of every render, the updates per second the
   view achieves and the share of the kernel's time they take.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nb_mistral._live import RENDER_SHARE, Throttle
from nb_mistral._render import ReplyRenderer
from nb_mistral._reply import Reply

ROOT = Path(__file__).resolve().parent.parent
OLD_COMMIT = "cfb2304"
TOKENS_PER_SECOND = 1000

SECTION = """## Section {n}

Streaming replies feel fast because the first words arrive at once; here is *why*, with
`inline code`, a [link](https://example.com/{n}) and some **emphasis** to render.

1. The server sends each token as soon as it is sampled.
2. The client parses events incrementally.
   - nested point with $x^{n}$ math

| Metric | Value |
|:-------|------:|
| tokens | {n}   |

```python
def step_{n}(x):
    return [i * x for i in range({n})]
```

"""


def sample(size: int) -> str:
    """Ordinary Markdown of ``size`` characters, in sections like a long answer."""
    parts, length, n = [], 0, 0
    while length < size:
        part = SECTION.format(n=n)
        parts.append(part)
        length += len(part)
        n += 1
    return "".join(parts)[:size]


def tokens_of(text: str, size: int = 4) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def load_old() -> Callable[[Reply], str] | None:
    """The replaced renderer's ``reply_markdown``, from git history, or None without git."""
    folder = Path(tempfile.mkdtemp(prefix="nb_mistral_old_render_"))
    package = folder / "old_render"
    package.mkdir()
    try:
        for name in ("_inert.py", "_render.py"):
            source = subprocess.run(
                ["git", "show", f"{OLD_COMMIT}:nb_mistral/{name}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            source = source.replace("from ._reply import", "from nb_mistral._reply import")
            (package / name).write_text(source)
    except (OSError, subprocess.CalledProcessError):
        return None
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(folder))
    module = importlib.import_module("old_render._render")
    return module.reply_markdown  # type: ignore[no-any-return]


def filled(text: str) -> Reply:
    reply = Reply("mistral-small-latest")
    for token in tokens_of(text):
        reply.add(chunk(token))
    return reply


def new_update(renderer: ReplyRenderer) -> None:
    renderer.html()
    renderer.text()


def per_update(size: int, old: Callable[[Reply], str] | None, repeats: int) -> list[str]:
    """Median time of one update of a reply of ``size`` characters, new and old, in ms."""
    text = sample(size + 4 * repeats)
    reply = filled(text[:size])
    renderer = ReplyRenderer(reply)
    new_update(renderer)  # the view has been following the stream
    new_costs, old_costs = [], []
    for token in tokens_of(text[size:])[:repeats]:
        reply.add(chunk(token))
        started = time.perf_counter()
        new_update(renderer)
        new_costs.append(time.perf_counter() - started)
        if old is not None:
            started = time.perf_counter()
            old(reply)
            old_costs.append(time.perf_counter() - started)
    reply.finish()
    started = time.perf_counter()
    new_update(renderer)
    final = time.perf_counter() - started
    old_cell = f"{statistics.median(old_costs) * 1e3:.2f}" if old_costs else "n/a"
    ratio = (
        f"{statistics.median(old_costs) / statistics.median(new_costs):.0f}×" if old_costs else ""
    )
    return [
        f"{size // 1000} KB",
        f"{statistics.median(new_costs) * 1e3:.2f}",
        old_cell,
        ratio,
        f"{final * 1e3:.1f}",
    ]


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def a_long_list(size: int) -> str:
    """One tight list of ``size`` characters: a single block until it ends."""
    items = (f"- item {n} with *emphasis* and `code` in it\n" for n in range(size))
    text = ""
    for item in items:
        text += item
        if len(text) >= size:
            return text[:size]
    return text


def simulate(
    size: int, render: Callable[[Reply], object], text: str | None = None
) -> tuple[float, float, int, float]:
    """Stream ``size`` characters at 1,000 tokens/s through a ``Throttle``; returns (updates
    per second, share of the time spent rendering, updates, longest render in ms)."""
    clock = VirtualClock()
    reply = Reply("mistral-small-latest")
    busy: list[float] = []

    def push() -> None:
        started = time.perf_counter()
        render(reply)
        cost = time.perf_counter() - started
        busy.append(cost)
        clock.now += cost  # the kernel was busy rendering: no token was read meanwhile

    throttle = Throttle(push, max_updates_per_second=20, clock=clock)
    for index, token in enumerate(tokens_of(text if text is not None else sample(size))):
        reply.add(chunk(token))
        throttle.changed(urgent=index == 0)
        clock.now += 1 / TOKENS_PER_SECOND
    reply.finish()
    throttle.close()
    return len(busy) / clock.now, sum(busy) / clock.now, len(busy), max(busy) * 1e3


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    old = load_old()
    print(f"# Rendering bench ({platform.python_implementation()} {platform.python_version()},")
    print(f"{platform.machine()}; old renderer: {'git ' + OLD_COMMIT if old else 'unavailable'})")
    print()
    print("## Time per update (ms, median)")
    print()
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    repeats = 5 if args.quick else 15
    rows = [per_update(size, old, repeats) for size in sizes]
    print(table(["reply", "new (incremental)", "old (full re-render)", "old/new", "final"], rows))
    print()
    size = 10_000 if args.quick else 100_000
    print(f"## {size // 1000} KB reply streamed at {TOKENS_PER_SECOND:,} tokens/s")
    print()
    print(f"Throttle: at most 20 updates/s and {RENDER_SHARE:.0%} of the kernel's time.")
    print()
    contenders: list[tuple[str, Callable[[Reply], object]]] = []
    renderer_holder: dict[int, ReplyRenderer] = {}

    def new(reply: Reply) -> None:
        renderer = renderer_holder.setdefault(id(reply), ReplyRenderer(reply))
        new_update(renderer)

    contenders.append(("new", new))
    if old is not None:
        contenders.append(("old", old))
    rows = []
    for name, render in contenders:
        for shape, text in (("sections", None), ("one long list", a_long_list(size))):
            renderer_holder.clear()
            rate, share, updates, longest = simulate(size, render, text)
            cells = [f"{rate:.1f}", f"{share:.1%}", str(updates), f"{longest:.1f}"]
            rows.append([name, shape, *cells])
    header = ["renderer", "reply", "updates/s", "kernel share", "updates", "longest (ms)"]
    print(table(header, rows))
    print()
    print(
        "Longest (new): the final, exact render of the whole reply, once. The old renderer "
        "only escaped Markdown in the kernel and left rendering it to the front end."
    )


if __name__ == "__main__":
    main()
