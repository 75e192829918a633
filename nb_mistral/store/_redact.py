"""Defensive redaction: a key must never reach the store file, even if a server echoes one.

The recorder never sees headers, so this is the second line: ``Bearer ...`` strings, the
``secret=`` a caller hands the store, and ``MISTRAL_API_KEY`` are replaced before writing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
_MIN_SECRET = 8  # shorter "secrets" would garble ordinary text
_BEARER = re.compile(r"(?i)\bbearer[ \t]+[A-Za-z0-9._~+/-]+=*")
_BEARER_BYTES = re.compile(rb"(?i)\bbearer[ \t]+[A-Za-z0-9._~+/-]+=*")


class Redactor:
    """Replaces known secrets and bearer tokens; its repr shows none of them."""

    __slots__ = ("_secret_bytes", "_secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        wanted = [*secrets, os.environ.get("MISTRAL_API_KEY")]
        self._secrets = tuple(
            sorted({s for s in wanted if s and len(s) >= _MIN_SECRET}, key=len, reverse=True)
        )
        self._secret_bytes = tuple(s.encode() for s in self._secrets)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._secrets)} secret(s)>"

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "earer" in value or "EARER" in value:
            value = _BEARER.sub("Bearer " + REDACTED, value)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self._secret_bytes:
            if secret in value:
                value = value.replace(secret, REDACTED.encode())
        if b"earer" in value or b"EARER" in value:
            value = _BEARER_BYTES.sub(b"Bearer " + REDACTED.encode(), value)
        return value
