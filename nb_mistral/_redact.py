"""The one redaction step: every message we surface passes through ``redact`` first.

It removes the value of every API key in use (each ``Secret`` registers itself here, and the
``MISTRAL_API_KEY`` of the environment counts too) and any ``Bearer`` credential, whatever the
text: our exceptions, wrapped httpx/h11 errors, server error bodies that echo the key, and the
log records of httpx, httpcore and nb_mistral (``RedactingFilter``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import weakref
from typing import Protocol

REDACTED = "[redacted]"
# A key shorter than this is not looked for (it would blank out ordinary words).
MIN_KEY_LENGTH = 4
# RFC 6750's token, loosely: anything up to a space, a quote or a bracket; a repr's "\n" too.
_BEARER = re.compile(r"(?i)\b(bearer)(?:\s+|%20|\+)[^\s'\"<>()\[\]{},;]+")


class Revealable(Protocol):
    def reveal(self) -> str: ...


# By identity: two secrets holding the same key are equal, and a set would keep only one.
_secrets: weakref.WeakValueDictionary[int, Revealable] = weakref.WeakValueDictionary()


def register(secret: Revealable) -> None:
    """Look for this secret's value in every message from now on (while it is alive)."""
    _secrets[id(secret)] = secret


def _spellings(value: str) -> set[str]:
    """The key as it may appear in text: as is, and escaped as JSON or a Python repr does."""
    return {value, json.dumps(value)[1:-1], repr(value)[1:-1]}


def _known_keys() -> list[str]:
    values = {secret.reveal() for secret in list(_secrets.values())}
    env = os.environ.get("MISTRAL_API_KEY", "").strip()
    if env:
        values.add(env)
    spelled = {spelling for value in values for spelling in _spellings(value)}
    # longest first, so that a key containing another is removed whole
    return sorted((v for v in spelled if len(v) >= MIN_KEY_LENGTH), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` without any known key and without the value of any ``Bearer`` credential."""
    for key in _known_keys():
        if key in text:
            text = text.replace(key, REDACTED)
    return _BEARER.sub(lambda match: f"{match.group(1)} {REDACTED}", text)


def is_clean(exc: BaseException) -> bool:
    """Whether an exception and everything chained to it show no key (str, repr, args)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for text in (str(current), repr(current), repr(current.args)):
            if redact(text) != text:
                return False
        current = current.__cause__ or current.__context__
    return True


def clean_cause(exc: BaseException) -> BaseException | None:
    """``exc`` if it may be chained to one of our errors, None if it could show a key."""
    return exc if is_clean(exc) else None


class RedactingFilter(logging.Filter):
    """Passes every record of the loggers it sits on through ``redact`` (httpcore logs the
    exceptions of a failed request at DEBUG, h11's ``Illegal header value b'Bearer ...'``
    among them). Loggers check their level first, so it costs nothing when DEBUG is off."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not is_clean(record.exc_info[1]):
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


# The loggers that may see a request's headers or errors: httpx's, httpcore's, ours.
LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "nb_mistral",
)


def install_log_filter() -> None:
    """Put one ``RedactingFilter`` on each of ``LOGGERS`` (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(RedactingFilter())
