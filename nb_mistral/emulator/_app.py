"""The routes and the tornado server that serves them on one port."""

from __future__ import annotations

from typing import Any

import tornado.netutil
import tornado.web

from ._batch_routes import (
    CancelHandler,
    FileContentHandler,
    FileHandler,
    FilesHandler,
    JobHandler,
    JobsHandler,
)
from ._chat import ChatHandler, ModelsHandler
from ._server import MAX_BODY, TORNADO_HEADER_LIMIT, CountingHTTPServer, NotFoundHandler
from ._state import EmulatorState

CLOSE_TIMEOUT = 5.0


def make_app(state: EmulatorState) -> tornado.web.Application:
    args = {"state": state}
    routes: list[Any] = [
        (r"/v1/chat/completions", ChatHandler, args),
        (r"/v1/models", ModelsHandler, args),
        (r"/v1/files", FilesHandler, args),
        (r"/v1/files/([^/]+)", FileHandler, args),
        (r"/v1/files/([^/]+)/content", FileContentHandler, args),
        (r"/v1/batch/jobs", JobsHandler, args),
        (r"/v1/batch/jobs/([^/]+)", JobHandler, args),
        (r"/v1/batch/jobs/([^/]+)/cancel", CancelHandler, args),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        log_function=lambda _handler: None,
    )


class EmulatorServer:
    """Binds, serves ``state`` on the running loop, and closes every connection on ``close``."""

    def __init__(self, state: EmulatorState, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = state
        self._host = host
        self.port = port
        self._server: CountingHTTPServer | None = None

    async def start(self) -> None:
        """Bind (raising OSError if the port is taken) and start serving."""
        sockets = tornado.netutil.bind_sockets(self.port, self._host)
        self.port = sockets[0].getsockname()[1]
        self._state.open_storage()
        server = CountingHTTPServer(
            make_app(self._state),
            recorder=self._state.recorder,
            max_header_size=TORNADO_HEADER_LIMIT,
            max_body_size=MAX_BODY,
            max_buffer_size=MAX_BODY + TORNADO_HEADER_LIMIT,
        )
        server.add_sockets(sockets)
        self._server = server

    async def close(self) -> None:
        """Stop listening, drop every open connection, stop the jobs, delete the files."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()
        await self._state.close_storage()
