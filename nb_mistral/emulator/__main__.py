"""``python -m nb_mistral.emulator``: serve the emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ._app import EmulatorServer
from ._batch import OUTCOME_KEY
from ._server import base_url
from ._state import EmulatorState


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nb_mistral.emulator",
        description="Offline emulator of Mistral's chat, files and batch APIs "
        "(deterministic replies, no model).",
        epilog=f"Batch jobs: metadata {{'{OUTCOME_KEY}': 'FAILED' | 'TIMEOUT_EXCEEDED'}} "
        "forces that terminal status.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=None,
        metavar="N",
        help="streaming pace (default: as fast as possible)",
    )
    parser.add_argument(
        "--api-key", default=None, metavar="KEY", help="require this bearer key (default: none)"
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="N",
        help="chat requests per second; past it 429 with Retry-After (default: no limit)",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="chat requests in flight; past it 429 with Retry-After (default: no limit)",
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=2.0,
        metavar="S",
        help="how long a batch job takes from QUEUED to its end (default: 2)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    state = EmulatorState(
        tokens_per_second=args.tokens_per_second,
        api_key=args.api_key,
        rate_limit=args.rate_limit,
        max_concurrency=args.max_concurrency,
        batch_seconds=args.batch_seconds,
    )
    server = EmulatorServer(state, host=args.host, port=args.port)
    await server.start()
    url = base_url(args.host, server.port)
    print(f"nb_mistral emulator listening on {url} (set MISTRAL_SERVER_URL to this)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
