"""The API key as a ``Secret``: checked once when set, never printed, never pickled.

A key read from a file or an environment variable often carries a newline; that is stripped. A
character that cannot be sent in an HTTP header (a control character, a space inside, anything
outside printable ASCII) is refused with a message that says where, never what, the key is.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from ._errors import ConfigurationError
from ._redact import register


def _problem(key: str) -> str | None:
    for position, char in enumerate(key, 1):
        if char.isspace():
            kind = "a space" if char == " " else "a whitespace character"
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            kind = "a control character"
        elif ord(char) > 0x7E:
            kind = "a non-ASCII character"
        else:
            continue
        return f"{kind} at position {position} of {len(key)}"
    return None


class Secret:
    """Holds the key; its str and repr never show it, and it refuses to be pickled."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        key = value.strip()
        problem = _problem(key)
        if problem is not None:
            del value, key  # not among the locals a traceback may show (pytest --showlocals)
            raise ConfigurationError(
                f"the API key contains {problem} (after stripping surrounding whitespace); "
                "an HTTP header cannot carry it. Check how the key was read or pasted."
            )
        if not key:
            raise ConfigurationError("the API key is empty")
        self._value = key
        register(self)

    @classmethod
    def of(cls, value: str | Secret | None) -> Secret | None:
        """A secret for a key as users give it; None for no key (None, or only whitespace)."""
        if value is None or isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise ConfigurationError(f"the API key must be a string, not {type(value).__name__}")
        if not value.strip():
            return None
        try:
            return cls(value)
        except ConfigurationError:
            del value  # see __init__
            raise

    def reveal(self) -> str:
        return self._value

    def digest(self) -> str:
        """A SHA-256 of the key: tells keys apart without holding one."""
        return hashlib.sha256(self._value.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the API key cannot be pickled")

    def __copy__(self) -> Secret:
        return self  # immutable: configs that deep-copy their values share it

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
