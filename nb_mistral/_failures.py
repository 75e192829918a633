"""Where the server URL came from, and connection failures that say what to check.

A URL without a scheme is refused when the client is made, not after a round of retries; a
failed connection names the server that was tried and the setting that chose it.
"""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass

import httpx

from ._errors import ConfigurationError, RequestError
from ._retry import Progress

OFFICIAL_SERVER = "https://api.mistral.ai"
ENV_SERVER_URL = "MISTRAL_SERVER_URL"


class Source(enum.Enum):
    ARGUMENT = "server_url"
    ENVIRONMENT = ENV_SERVER_URL
    DEFAULT = "the default"


@dataclass(frozen=True)
class Origin:
    """The server URL in use and the setting it came from."""

    url: str
    source: Source

    @classmethod
    def of(cls, server_url: str | None) -> Origin:
        """``server_url``, else ``MISTRAL_SERVER_URL``, else the official server; checked."""
        env = os.environ.get(ENV_SERVER_URL, "").strip()
        if server_url is not None and server_url.strip():
            origin = cls(server_url.strip(), Source.ARGUMENT)
        elif env:
            origin = cls(env, Source.ENVIRONMENT)
        else:
            origin = cls(OFFICIAL_SERVER, Source.DEFAULT)
        origin.check()
        return origin

    def setting(self) -> str:
        """How the user chose this server, in words a fix can start from."""
        if self.source is Source.ENVIRONMENT:
            return f"{ENV_SERVER_URL} is set to {self.url}"
        if self.source is Source.ARGUMENT:
            return f"server_url is {self.url}"
        return f"{ENV_SERVER_URL} is not set, so the official server is used"

    def check(self) -> None:
        if "://" not in self.url:
            raise ConfigurationError(
                f"the server URL {self.url!r} has no scheme ({self.setting()}): "
                f"write http://{self.url} for a local server, or https://..."
            )
        try:
            url = httpx.URL(self.url)
        except httpx.InvalidURL as exc:
            raise ConfigurationError(f"the server URL {self.url!r} is not valid ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigurationError(
                f"the server URL {self.url!r} must be http:// or https:// with a host "
                f"({self.setting()})"
            )


def server_url_of(origin: Origin) -> str:
    return origin.url.rstrip("/")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (httpx wraps httpcore, which wraps the socket error)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _reason(exc: httpx.HTTPError) -> str:
    chain = _chain(exc)
    if any(isinstance(link, ConnectionRefusedError) for link in chain):
        return "connection refused"
    if any(isinstance(link, socket.gaierror) for link in chain):
        return "host name not found"
    lowered = " ".join(str(link) for link in chain).lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host name not found"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def request_error(exc: httpx.HTTPError, progress: Progress, origin: Origin) -> RequestError:
    """The ``RequestError`` a user sees when no usable answer came, saying what to check."""
    url = origin.url
    if progress is Progress.NOT_SENT:
        hint = (
            "check the network connection"
            if origin.source is Source.DEFAULT
            else "is the server running?"
        )
        return RequestError(
            f"could not connect to {url} ({_reason(exc)}) — {hint} {origin.setting()}."
        )
    if progress is Progress.AWAITING_ANSWER:
        return RequestError(
            f"{url} took the request but sent nothing within the read timeout ({exc}); not "
            "retried, since the server may still be working on it. Raise timeout_ms if replies "
            "take long to start."
        )
    if progress is Progress.DROPPED:
        return RequestError(f"{url} closed the connection without an answer ({_reason(exc)})")
    return RequestError(f"the request to {url} could not be sent ({_reason(exc)})")
