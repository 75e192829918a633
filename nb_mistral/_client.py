"""The ``Mistral`` client: one request path, driven by a short sync and a short async loop.

Each loop makes one attempt at a time (``_attempt`` / ``_attempt_async``), which ends in the
caller's result or in a ``_Failure``; whether and when to try again is ``RetryPolicy``'s call
(``_retry``), so the loops hold no decisions of their own. Errors are raised outside any
``except`` block: no httpx exception (nor anything it holds) is chained to them.

The key lives in a ``Secret`` and is put on each request by an httpx auth hook, so no local
variable holds it. Connections are pooled: sequential requests share one keep-alive connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx

from ._errors import APIError, MistralError, NoAPIKeyError
from ._failures import Origin, request_error, server_url_of
from ._redact import install_log_filter
from ._resources import Chat, Models
from ._retry import ErrorStatus, Outcome, RetryPolicy, TransportFailure, progress_of
from ._secret import Secret
from ._stored import CacheSetting, StoreSetting, StoreSettings

OFFICIAL_HOST = "api.mistral.ai"
_DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)

R = TypeVar("R")

install_log_filter()


class _BearerAuth(httpx.Auth):
    def __init__(self, secret: Secret) -> None:
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self._secret.reveal()
        yield request

    def __repr__(self) -> str:
        return "<bearer auth>"


@dataclass(frozen=True)
class _Failure:
    """One failed attempt: what the retry policy needs to know, and the error to raise."""

    outcome: Outcome
    error: MistralError


class Mistral:
    """A small client for Mistral's chat API (and any server that speaks its wire format).

    ``client`` / ``async_client``: your own ``httpx.Client`` / ``httpx.AsyncClient`` (proxies,
    limits, event hooks, a mock transport); they are used as they are and never closed by us.
    ``max_retries`` is a count, or a ``RetryPolicy`` for full control of the waits.

    ``store`` (a path, ``"off"`` or a ``Store``) records every streamed reply; ``cache``
    (``off`` | ``replay`` | ``only``) lets a recorded complete reply answer an identical request
    with nothing sent (``only``: a miss raises ``CacheMiss``). A cache mode without a store uses
    ``NB_MISTRAL_STORE``'s (default ``~/.nb_mistral/replies.sqlite3``). Neither: no store at all.
    """

    def __init__(
        self,
        api_key: str | Secret | None = None,
        server_url: str | None = None,
        timeout_ms: int | None = None,
        max_retries: int | RetryPolicy = 2,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        *,
        store: StoreSetting = None,
        cache: CacheSetting = None,
        replay_speed: float | None = None,
    ) -> None:
        try:
            self._secret = Secret.of(
                api_key if api_key is not None else os.environ.get("MISTRAL_API_KEY")
            )
        except MistralError:
            del api_key  # not among the locals a traceback may show
            raise
        self._origin = Origin.of(server_url)
        self.server_url = server_url_of(self._origin)
        base = self.server_url.removesuffix("/v1")
        self._base = base
        self._needs_key = httpx.URL(base).host == OFFICIAL_HOST
        self._timeout = httpx.Timeout(timeout_ms / 1000) if timeout_ms is not None else None
        self._retry = (
            max_retries
            if isinstance(max_retries, RetryPolicy)
            else RetryPolicy(max(0, max_retries))
        )
        self._client = client
        self._owns_client = client is None
        self._given_async_client = async_client
        self._async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._bearer = _BearerAuth(self._secret) if self._secret is not None else None
        self._store_settings = (
            StoreSettings(store=store, cache=cache, replay_speed=replay_speed)
            if store is not None or cache is not None
            else None
        )
        self.chat = Chat(self)
        self.models = Models(self)

    @property
    def max_retries(self) -> int:
        return self._retry.max_retries

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    @property
    def timeout(self) -> httpx.Timeout:
        return self._timeout or _DEFAULT_TIMEOUT

    @property
    def has_api_key(self) -> bool:
        return self._secret is not None

    def __repr__(self) -> str:
        key = "set" if getattr(self, "_secret", None) else "none"
        return f"Mistral(server_url={getattr(self, 'server_url', None)!r}, api_key=<{key}>)"

    # -- the request path -------------------------------------------------------------

    def _auth(self) -> httpx.Auth | None:
        if self._bearer is None and self._needs_key:
            raise NoAPIKeyError()
        return self._bearer

    def _request(
        self,
        client: httpx.Client | httpx.AsyncClient,
        method: str,
        path: str,
        body: Any,
        files: dict[str, Any] | None = None,
    ) -> httpx.Request:
        """A JSON request, or with ``files`` a multipart form (``body`` its other fields)."""
        stream = isinstance(body, dict) and body.get("stream") is True
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        timeout = self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT
        if files is not None:
            return client.build_request(
                method, self._base + path, data=body, files=files, headers=headers,
                timeout=timeout,
            )  # fmt: skip
        return client.build_request(
            method, self._base + path, json=body, headers=headers, timeout=timeout
        )

    def _status_failure(self, response: httpx.Response) -> _Failure:
        headers = response.headers
        request_id = headers.get("x-request-id") or headers.get("mistral-correlation-id")
        body = response.content.decode("utf-8", "replace")
        error = APIError.from_body(response.status_code, body, request_id=request_id)
        return _Failure(ErrorStatus(response.status_code, headers.get("retry-after")), error)

    def _transport_failure(self, exc: httpx.HTTPError) -> _Failure:
        progress = progress_of(exc)
        return _Failure(TransportFailure(progress), request_error(exc, progress, self._origin))

    def _attempt(
        self,
        client: httpx.Client,
        request: httpx.Request,
        accept: Callable[[httpx.Response], R],
    ) -> R | _Failure:
        response: httpx.Response | None = None
        try:
            response = client.send(request, auth=self._auth(), stream=True)
            if not response.is_success:
                response.read()
                return self._status_failure(response)
            return accept(response)
        except httpx.HTTPError as exc:
            if response is not None:
                response.close()
            return self._transport_failure(exc)
        except BaseException:
            if response is not None:
                response.close()
            raise

    async def _attempt_async(
        self,
        client: httpx.AsyncClient,
        request: httpx.Request,
        accept: Callable[[httpx.Response], Awaitable[R]],
    ) -> R | _Failure:
        response: httpx.Response | None = None
        try:
            response = await client.send(request, auth=self._auth(), stream=True)
            if not response.is_success:
                await response.aread()
                return self._status_failure(response)
            return await accept(response)
        except httpx.HTTPError as exc:
            if response is not None:
                await response.aclose()
            return self._transport_failure(exc)
        except BaseException:
            if response is not None:
                await response.aclose()
            raise

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        accept: Callable[[httpx.Response], R],
        files: dict[str, Any] | None = None,
    ) -> R:
        """Send with retries; ``accept`` turns a 2xx response into the result (reading as much
        of it as must arrive before the request counts as answered). With ``files``, a
        multipart upload (httpx rewinds the files for a retry)."""
        self._auth()  # no key for the official server: fail before any network
        client = self._sync_client()
        request = self._request(client, method, path, body, files)
        attempt = 0
        while isinstance(result := self._attempt(client, request, accept), _Failure):
            delay = self._retry.decide(attempt, result.outcome)
            if delay is None:
                raise result.error
            self._retry.sleep(delay)
            attempt += 1
        return result

    async def _send_async(
        self, method: str, path: str, body: Any, accept: Callable[[httpx.Response], Awaitable[R]]
    ) -> R:
        """Async twin of ``_send``."""
        self._auth()
        client = self._async_client()
        request = self._request(client, method, path, body)
        attempt = 0
        while isinstance(result := await self._attempt_async(client, request, accept), _Failure):
            delay = self._retry.decide(attempt, result.outcome)
            if delay is None:
                raise result.error
            await self._retry.async_sleep(delay)
            attempt += 1
        return result

    # -- httpx clients ----------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        """The caller's async client, or one of ours per event loop (a notebook may run
        several loops in turn, and a pooled connection belongs to one loop)."""
        if self._given_async_client is not None:
            return self._given_async_client
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            for old in [old for old in self._async_clients if old.is_closed()]:
                del self._async_clients[old]
            client = self._async_clients[loop] = httpx.AsyncClient(timeout=self.timeout)
        return client

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections of the clients we made (never a client passed in)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        clients, self._async_clients = self._async_clients, {}
        for loop, client in clients.items():
            _close_on(loop, client)

    async def aclose(self) -> None:
        """``close``, awaiting the async client of the running loop."""
        loop = asyncio.get_running_loop()
        mine = self._async_clients.pop(loop, None)
        self.close()
        if mine is not None:
            await mine.aclose()

    def __enter__(self) -> Mistral:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Mistral:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _close_on(loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient) -> None:
    """Close an async client from sync code, on the loop its connections belong to."""
    if loop.is_closed():
        return  # its connections died with the loop
    if loop.is_running():
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(client.aclose(), loop)
        return
    with contextlib.suppress(RuntimeError):  # another loop runs in this thread: leave it
        loop.run_until_complete(client.aclose())
