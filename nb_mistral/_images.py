"""Images in prompts: matplotlib figures, PIL images, ``IPython.display.Image``, image bytes and
image files become the API's ``image_url`` chunks (``data:`` URLs).

matplotlib and Pillow are never imported here: a value is recognised by its type's module, so
a user without them simply has no figures to pass. The API's limits (10 MB per image, 8 images
per request) are checked before anything is sent.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._errors import MistralError
from ._imagefmt import MIME_TYPES, sniff

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGES = 8
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
VISION_MODEL = "mistral-small-latest"


class ContextError(MistralError, ValueError):
    """A prompt's context cannot be sent as it is (an image too large, a table over budget,
    too many images): raised before any request."""


def _module(value: Any) -> str:
    return type(value).__module__ or ""


def is_image(value: Any) -> bool:
    """Whether ``value`` is something this module turns into an image chunk (a path by its
    image suffix; a ``str`` only when it names an existing image file)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return sniff(bytes(value[:32]))[0] is not None
    if isinstance(value, Path):
        return value.suffix.lower() in IMAGE_SUFFIXES
    if isinstance(value, str):
        return len(value) < 4096 and _is_image_file(value)
    return _is_figure(value) or _is_pil(value) or _is_ipython_image(value)


def _is_image_file(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES and os.path.isfile(path)


def _is_figure(value: Any) -> bool:
    return _module(value).startswith("matplotlib") and hasattr(value, "savefig")


def _is_pil(value: Any) -> bool:
    return _module(value).startswith("PIL") and hasattr(value, "save") and hasattr(value, "mode")


def _is_ipython_image(value: Any) -> bool:
    return _module(value).startswith("IPython") and type(value).__name__ == "Image"


def image_bytes(value: Any) -> tuple[bytes, str]:
    """The encoded image and a short name of where it came from (for error messages)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "image bytes"
    if isinstance(value, (str, Path)):
        path = Path(value)
        try:
            return path.read_bytes(), f"the file {str(path)!r}"
        except OSError as exc:
            raise ContextError(f"cannot read the image {str(path)!r}: {exc.strerror}") from None
    if _is_figure(value):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png")
        return buffer.getvalue(), "the matplotlib figure"
    if _is_pil(value):
        buffer = io.BytesIO()
        image = (
            value if value.mode in ("RGB", "RGBA", "L", "LA", "P", "1") else value.convert("RGB")
        )
        image.save(buffer, format="PNG")
        return buffer.getvalue(), "the PIL image"
    if _is_ipython_image(value) and isinstance(getattr(value, "data", None), bytes):
        return value.data, "the IPython Image"
    raise ContextError(f"{type(value).__name__} is not an image this package can send")


def image_chunk(value: Any) -> dict[str, Any]:
    """The ``image_url`` content chunk of one image (checked: format and size)."""
    if _is_ipython_image(value) and getattr(value, "data", None) is None:
        url = getattr(value, "url", None)
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return {"type": "image_url", "image_url": url}  # the API fetches it
    data, origin = image_bytes(value)
    kind, _ = sniff(data[: 64 * 1024])
    if kind is None:
        raise ContextError(f"{origin} is not a PNG, JPEG, WEBP or GIF image")
    if len(data) > MAX_IMAGE_BYTES:
        raise ContextError(
            f"{origin} is {len(data) / 1e6:.1f} MB, over the API's limit of "
            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB per image: nothing was sent"
        )
    encoded = base64.b64encode(data).decode("ascii")
    return {"type": "image_url", "image_url": f"data:{MIME_TYPES[kind]};base64,{encoded}"}


def count_images(messages: Iterable[Mapping[str, Any]]) -> int:
    """The ``image_url`` chunks of a conversation."""
    return sum(
        1
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if isinstance(part, Mapping) and part.get("type") == "image_url"
    )


def check_image_count(messages: Iterable[Mapping[str, Any]]) -> int:
    """The number of images, or a ``ContextError`` past the API's limit per request."""
    count = count_images(messages)
    if count > MAX_IMAGES:
        raise ContextError(
            f"the request holds {count} images, over the API's limit of {MAX_IMAGES} per "
            "request: nothing was sent"
        )
    return count
