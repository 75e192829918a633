"""``python -m nb_mistral.emulator``: serve the emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ._api import MistralAPI
from ._server import HTTPServer, base_url


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m nb_mistral.emulator",
        description="Offline emulator of Mistral's chat API (deterministic replies, no model).",
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
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    server = HTTPServer(
        MistralAPI(args.tokens_per_second, args.api_key), host=args.host, port=args.port
    )
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
