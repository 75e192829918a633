"""The cache mode: whether an identical request is answered from the store."""

from __future__ import annotations

import os
from enum import Enum

CACHE_ENV = "NB_MISTRAL_CACHE"


class CacheMode(str, Enum):
    """``off``: always ask the server; ``replay``: answer from a complete record when there is
    one, else ask and record; ``only``: never ask (a miss raises ``CacheMiss``)."""

    OFF = "off"
    REPLAY = "replay"
    ONLY = "only"

    @classmethod
    def parse(cls, value: str | bool | CacheMode | None) -> CacheMode:
        """From a setting: a mode name (any case), a bool (``--cache`` / ``--no-cache``), or
        None / empty for the default, ``off``."""
        if isinstance(value, CacheMode):
            return value
        if value is None:
            return cls.OFF
        if isinstance(value, bool):
            return cls.REPLAY if value else cls.OFF
        name = value.strip().lower()
        if not name:
            return cls.OFF
        aliases = {"on": cls.REPLAY, "true": cls.REPLAY, "1": cls.REPLAY, "false": cls.OFF}
        if name in aliases:
            return aliases[name]
        try:
            return cls(name)
        except ValueError:
            choices = ", ".join(mode.value for mode in cls)
            raise ValueError(f"unknown cache mode {value!r}: use one of {choices}") from None

    @classmethod
    def from_env(cls) -> CacheMode:
        """``NB_MISTRAL_CACHE``, or ``off`` when unset."""
        return cls.parse(os.environ.get(CACHE_ENV))
