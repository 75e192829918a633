"""The in-process emulator: the server on its own event loop in a daemon thread.

A thread of its own makes one object usable the same way from plain sync tests, async
tests and Jupyter kernels (whose loop is already running), and lets tests look at what
the server saw (requests, abandoned streams) from the outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType

from ._api import MistralAPI
from ._server import HTTPServer, RecordedRequest, base_url


class Emulator:
    """An offline stand-in for Mistral's chat API, listening on loopback by default.

    >>> with Emulator(tokens_per_second=50) as emu:
    ...     client = Mistral(server_url=emu.url)
    """

    def __init__(
        self,
        tokens_per_second: float | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._api = MistralAPI(tokens_per_second, api_key)
        self._host = host
        self._bind_port = port
        self._port = port
        self._requests: list[RecordedRequest] = []
        self._disconnects = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- configuration ---------------------------------------------------------------

    @property
    def tokens_per_second(self) -> float | None:
        """Streaming pace; None or 0 means as fast as possible. Applies to new streams."""
        return self._api.tokens_per_second

    @tokens_per_second.setter
    def tokens_per_second(self, value: float | None) -> None:
        self._api.tokens_per_second = value

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
        with self._changed:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._changed:
            return len(self._requests)

    @property
    def disconnects(self) -> int:
        """Streams the client abandoned before the end."""
        with self._changed:
            return self._disconnects

    def wait_for_disconnect(self, timeout: float = 5.0, n: int = 1) -> bool:
        """Block until at least ``n`` streams were abandoned; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._disconnects < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def reset(self) -> None:
        """Forget recorded requests and disconnects (between phases of a test)."""
        with self._changed:
            self._requests.clear()
            self._disconnects = 0

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _count_disconnect(self) -> None:
        with self._changed:
            self._disconnects += 1
            self._changed.notify_all()

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
        server = HTTPServer(
            self._api,
            host=self._host,
            port=self._bind_port,
            on_request=self._record,
            on_disconnect=self._count_disconnect,
        )
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
