"""Untrusted text for plain-text outputs, and text any output can encode.

Front ends turn URLs in ``text/plain`` into links (JupyterLab does), so the schemes that run
or embed something get a zero-width joiner after their name: ``javascript:`` reads the same
but is no longer a URL. Lone surrogates (a JSON ``\\ud800``) cannot be encoded as UTF-8 and
would fail the output message; they become U+FFFD where shown, and are dropped from the text a
``Reply`` keeps.
"""

from __future__ import annotations

import re

ZWJ = "\u200d"
_SCHEME = re.compile(r"(?i)(javascript|vbscript|data)([ \t]*):")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def defang(text: str) -> str:
    """``text`` with its ``javascript:``, ``vbscript:`` and ``data:`` schemes broken."""
    return _SCHEME.sub(lambda match: f"{match.group(1)}{ZWJ}{match.group(2)}:", text)


def _recode(text: str, errors: str) -> str:
    # a pair split over two deltas is whole again once joined: UTF-16 puts it back together
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", errors)


def displayable(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates as U+FFFD."""
    return _recode(text, "replace") if _SURROGATE.search(text) else text


def encodable(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates dropped."""
    return _recode(text, "ignore") if _SURROGATE.search(text) else text


def plain(text: str) -> str:
    """Untrusted text as it may go into ``text/plain``."""
    return defang(displayable(text))


class GrowingPlain:
    """``plain`` of a text that only grows (a streaming reply), redoing only what came after
    its last complete line, so an update does not cost more as the reply gets longer."""

    def __init__(self) -> None:
        self._source = ""
        self._plain = ""

    def __call__(self, text: str) -> str:
        if not text.startswith(self._source):
            self._source, self._plain = "", ""
        start = len(self._source)
        cut = max(text.rfind("\n", start), text.rfind("\r", start)) + 1
        if cut > start:  # a scheme never spans a line break, a surrogate pair never ends one
            self._plain += plain(text[start:cut])
            self._source = text[:cut]
        return self._plain + plain(text[len(self._source) :])
