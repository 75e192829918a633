"""The in-process emulator: the server on its own event loop in a daemon thread.

A thread of its own makes one object usable the same way from plain sync tests, async
tests and Jupyter kernels (whose loop is already running), and lets tests look at what
the server saw (requests, abandoned streams) from the outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from ._app import EmulatorServer
from ._recorder import RateLimited, RecordedRequest
from ._server import base_url
from ._state import EmulatorState


class Emulator:
    """An offline stand-in for Mistral's chat, files and batch APIs, on loopback by default.

    ``rate_limit`` (chat requests per second) and ``max_concurrency`` (chat requests in
    flight) answer 429 with ``Retry-After`` past them; ``batch_seconds`` is how long a batch
    job takes from ``QUEUED`` to its end.

    >>> with Emulator(tokens_per_second=50) as emu:
    ...     client = Mistral(server_url=emu.url)
    """

    def __init__(
        self,
        tokens_per_second: float | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rate_limit: float | None = None,
        max_concurrency: int | None = None,
        batch_seconds: float = 2.0,
    ) -> None:
        self._state = EmulatorState(
            tokens_per_second=tokens_per_second,
            api_key=api_key,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            batch_seconds=batch_seconds,
        )
        self._recorder = self._state.recorder
        self._host = host
        self._bind_port = port
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- configuration ---------------------------------------------------------------

    @property
    def tokens_per_second(self) -> float | None:
        """Streaming pace; None or 0 means as fast as possible. Applies to new streams."""
        return self._state.tokens_per_second

    @tokens_per_second.setter
    def tokens_per_second(self, value: float | None) -> None:
        self._state.tokens_per_second = value

    @property
    def batch_seconds(self) -> float:
        """How long a new batch job takes from ``QUEUED`` to its end."""
        return self._state.batch_seconds

    @batch_seconds.setter
    def batch_seconds(self, value: float) -> None:
        self._state.batch_seconds = value

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL for ``MISTRAL_SERVER_URL`` / ``server_url`` (no ``/v1``)."""
        if not self._port:
            raise RuntimeError("the emulator has no port yet: call start() first")
        return base_url(self._host, self._port)

    # -- what the server saw ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        return self._recorder.requests

    @property
    def request_count(self) -> int:
        return self._recorder.request_count

    @property
    def rate_limits(self) -> list[RateLimited]:
        """Every 429 sent (rate or concurrency limit): when, and its ``Retry-After``."""
        return self._recorder.rate_limits

    @property
    def disconnects(self) -> int:
        """Streams the client abandoned before the end."""
        return self._recorder.disconnects

    @property
    def connections(self) -> int:
        """TCP connections accepted (keep-alive reuse shows as fewer connections)."""
        return self._recorder.connections

    @property
    def peak_in_flight(self) -> int:
        """The most chat requests in flight at once (admitted ones, not those refused)."""
        return self._recorder.peak_in_flight

    def wait_for_disconnect(self, timeout: float = 5.0, n: int = 1) -> bool:
        """Block until at least ``n`` streams were abandoned; False on timeout."""
        return self._recorder.wait_for_disconnect(timeout, n)

    def reset(self) -> None:
        """Forget recorded requests, connections, disconnects and the peak in flight."""
        self._recorder.reset()

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving; returns once the port is bound (raises if it cannot be)."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="nb_mistral-emulator", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self) -> None:
        """Close every connection, stop listening and join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                loop.call_soon_threadsafe(stopping.set)
        if thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._thread is not None else "stopped"
        return f"<Emulator {where} tokens_per_second={self.tokens_per_second!r}>"

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as e:
            self._error = e
        finally:
            try:
                loop.run_until_complete(_cancel_leftovers())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        server = EmulatorServer(self._state, host=self._host, port=self._bind_port)
        await server.start()
        self._port = server.port
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            await server.close()


async def _cancel_leftovers() -> None:
    """Cancel and await whatever tasks are still pending, as ``asyncio.run`` does."""
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
