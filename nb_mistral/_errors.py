"""The exceptions users catch; every failure of a request or a stream is a ``MistralError``::

    MistralError                   anything nb_mistral raises
    ├── ConfigurationError         a setting is unusable: server URL, API key (also a ValueError)
    ├── NoAPIKeyError              the official server needs a key and none was given
    ├── APIError                   the server answered with an HTTP error status
    ├── RequestError               no answer: the connection failed or timed out
    └── StreamError                a stream that had begun broke (cut, stalled, undecodable)

Every message passes through ``redact`` when the error is made, so no API key or ``Bearer``
value can reach a str, repr, traceback, log line or cell output through one of these.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from typing import Any

from ._redact import redact


class MistralError(Exception):
    """Base of every error raised by nb_mistral (timeouts and connection failures included)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(redact(message))


class ConfigurationError(MistralError, ValueError):
    """A setting cannot work (a server URL without a scheme, a key with a control character):
    raised when it is set, before any request."""


class NoAPIKeyError(MistralError):
    """The official server needs a key and none was given."""

    def __init__(self) -> None:
        # the interpreter running this code has nb_mistral installed: the command works as
        # written from any terminal, whether or not the user activated a virtual environment
        python = shlex.quote(sys.executable or "python")
        super().__init__(
            "No Mistral API key: set MISTRAL_API_KEY (or pass api_key=...), or point "
            "MISTRAL_SERVER_URL at a Mistral-compatible server such as the offline emulator: "
            f"start it in a terminal with `{python} -m nb_mistral.emulator`, then set "
            "MISTRAL_SERVER_URL=http://127.0.0.1:8765 (in a notebook: "
            "`%env MISTRAL_SERVER_URL=http://127.0.0.1:8765`)."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), ())


class APIError(MistralError):
    """The server answered with an HTTP error status."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        body: str = "",
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = redact(body)
        self.request_id = request_id
        self.message = redact(message)  # the server's own (the body's message / detail)
        super().__init__(f"{status_code}: {message}" if message else f"HTTP {status_code}")

    @classmethod
    def from_body(cls, status_code: int, body: str, request_id: str | None = None) -> APIError:
        """Build the error from an error body, whatever shape the server gave it."""
        payload: Any = None
        with contextlib.suppress(ValueError):
            payload = json.loads(body)
        message = ""
        if isinstance(payload, dict):
            request_id = request_id or _str_or_none(payload.get("request_id"))
            raw = payload.get("message", payload.get("detail"))
            if isinstance(raw, dict) and "detail" in raw:
                raw = raw["detail"]
            message = _describe(raw)
        elif body.strip():
            message = body.strip().splitlines()[0][:300]
        return cls(status_code, message, body=body, request_id=request_id)

    def __repr__(self) -> str:
        return f"APIError(status_code={self.status_code}, message={self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled whole (to another process), already redacted."""
        fields = (self.status_code, self.message, self.body, self.request_id)
        return (_api_error, fields)


def _api_error(status_code: int, message: str, body: str, request_id: str | None) -> APIError:
    return APIError(status_code, message, body=body, request_id=request_id)


class RequestError(MistralError):
    """The request could not be made or answered: connection failure or timeout."""


class StreamError(MistralError):
    """A stream that had begun broke; every complete event that arrived was yielded first."""


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _describe(raw: Any) -> str:
    """One readable line from a ``message``/``detail`` value (422 bodies carry a list)."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        parts = []
        for item in raw:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                parts.append(_describe(item))
        return "; ".join(parts)
    return json.dumps(raw, ensure_ascii=False)
