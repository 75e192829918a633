"""The exceptions users catch. Every failure of a request or a stream is a ``MistralError``."""

from __future__ import annotations

import contextlib
import json
from typing import Any


class MistralError(Exception):
    """Base of every error raised by nb_mistral (timeouts and connection failures included)."""


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
        self.message = message
        self.body = body
        self.request_id = request_id
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
        elif body:
            message = body.strip().splitlines()[0][:300] if body.strip() else ""
        return cls(status_code, message, body=body, request_id=request_id)

    def __repr__(self) -> str:
        return f"APIError(status_code={self.status_code}, message={self.message!r})"


class StreamError(MistralError):
    """A stream that had begun broke; every complete event that arrived was yielded first."""


class RequestError(MistralError):
    """The request could not be made or answered: connection failure or timeout."""


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
