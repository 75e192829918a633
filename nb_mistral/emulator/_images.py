"""What the emulator can say about the images of a prompt: format and pixel size, read from the
file header of each ``data:`` URL (no imaging library needed)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from .._imagefmt import sniff


def image_urls(message: Any) -> list[str]:
    """The ``image_url`` chunks of one message, as URLs."""
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, Sequence) or isinstance(content, str):
        return []
    urls: list[str] = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            url = part.get("image_url")
            if isinstance(url, Mapping):
                url = url.get("url")
            if isinstance(url, str):
                urls.append(url)
    return urls


def describe(url: str) -> str:
    """``PNG 640×480``, or what can be said of a URL that is not an image."""
    if not url.startswith("data:"):
        return "an image by URL (not fetched)"
    header, _, payload = url.partition(",")
    try:
        data = base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return "undecodable image data"
    kind, size = sniff(data)
    declared = header.removeprefix("data:").split(";")[0]
    if kind is None:
        return f"unknown image data ({declared or 'no type'})"
    return f"{kind} {size[0]}×{size[1]}" if size else kind
