"""The request key: which requests a recorded reply may answer.

Two requests share a key when they go to the same server URL and endpoint with the same body,
``stream`` aside (a streamed and a non-streamed call of one request share it). The JSON is
canonical (sorted keys, no whitespace), so the key does not depend on the order of options.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CHAT_ENDPOINT = "/v1/chat/completions"


def clean_server_url(url: str) -> str:
    """Scheme, host, port and path only: user info, query and fragment never leave here."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value``: sorted keys, no whitespace, non-ASCII kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(server_url: str, endpoint: str, body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of server URL, endpoint and body without ``stream``.

    A server URL given with its ``/v1`` suffix keys as the same request as one without it, since
    the client sends both to the same address."""
    server = clean_server_url(server_url)
    if server.endswith("/v1") and endpoint.startswith("/v1/"):
        server = server[: -len("/v1")]
    request = {name: value for name, value in body.items() if name != "stream"}
    text = canonical_json({"body": request, "endpoint": endpoint, "server_url": server})
    return hashlib.sha256(text.encode()).hexdigest()
