"""What the notebook layer shares: the default model, the one client cache, and how a prompt
becomes the messages to send. ``%%mistral``, ``stream``/``astream`` and ``ChatWidget`` all take
their client from here, so they share its connections.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from pydantic import BaseModel

from ._client import Mistral
from ._failures import ENV_SERVER_URL
from ._request import MessageLike, message_dict
from ._secret import Secret

DEFAULT_MODEL = "mistral-large-latest"
ENV_API_KEY = "MISTRAL_API_KEY"

ReplyFormat = Literal["markdown", "text", "code"]

# A notebook may use a few settings side by side (a %config server, the environment's for a
# widget); more than this many, and the least recently used client is closed.
MAX_CLIENTS = 4

_CacheKey = tuple[str, str, int | None]
_lock = threading.Lock()
_cache: OrderedDict[_CacheKey, Mistral] = OrderedDict()


def client_for(
    api_key: Secret | None = None, server_url: str | None = None, timeout_ms: int | None = None
) -> Mistral:
    """The client for these settings (the environment filling in what is None), one per key
    digest, server URL and timeout, so that every part of the notebook shares its connections.
    Beyond ``MAX_CLIENTS``, the least recently used one is closed."""
    secret = api_key if api_key is not None else Secret.of(os.environ.get(ENV_API_KEY))
    url = server_url or os.environ.get(ENV_SERVER_URL, "").strip()
    key = (secret.digest() if secret is not None else "", url, timeout_ms)
    with _lock:
        client = _cache.get(key)
        if client is not None:
            _cache.move_to_end(key)
            return client
        client = _cache[key] = Mistral(
            api_key=secret, server_url=server_url or None, timeout_ms=timeout_ms
        )
        evicted = [_cache.popitem(last=False)[1] for _ in range(len(_cache) - MAX_CLIENTS)]
    for old in evicted:
        old.close()
    return client


def default_client() -> Mistral:
    """A client from ``MISTRAL_API_KEY`` / ``MISTRAL_SERVER_URL``."""
    return client_for()


def build_messages(
    prompt: str | Sequence[MessageLike | Any],
    *,
    system: str | None = None,
    history: Sequence[dict[str, Any]] = (),
    max_context_chars: int = 8_000,
) -> list[dict[str, Any]]:
    """The conversation to send: earlier turns, a system prompt if none yet, the new prompt.

    A prompt is text, messages, or a list of text and context (images, tables): the latter
    is one user message. More images than the API takes is a ``ContextError``, before sending.
    """
    from ._images import check_image_count
    from ._interpolate import context_content

    new: list[dict[str, Any]]
    if isinstance(prompt, str):
        new = [{"role": "user", "content": prompt}]
    elif all(_is_message(item) for item in prompt):
        new = [message_dict(cast(MessageLike, message)) for message in prompt]
    else:
        new = [{"role": "user", "content": context_content(prompt, max_chars=max_context_chars)}]
    messages = [dict(message) for message in history] + new
    if system and not any(message.get("role") == "system" for message in messages):
        messages.insert(0, {"role": "system", "content": system})
    check_image_count(messages)
    return messages


def _is_message(item: Any) -> bool:
    return isinstance(item, BaseModel) or (isinstance(item, Mapping) and "role" in item)


def model_for(messages: Sequence[Mapping[str, Any]], model: str | None) -> str:
    """The model asked for, else a vision model when the messages hold images, else the
    default."""
    from ._images import VISION_MODEL, count_images

    if model:
        return model
    return VISION_MODEL if count_images(messages) else DEFAULT_MODEL
