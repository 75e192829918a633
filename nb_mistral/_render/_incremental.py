"""Rendering a reply that grows, at a cost per update that does not grow with it.

Top-level blocks that are over (the parser has seen the next block start on a complete line)
are rendered and sanitised once and kept; only the still-open tail is redone on each update.
Block structure is decided line by line, so what follows a finished block cannot change it;
link reference definitions are the exception (they apply to the whole text): a finished block
that defines one has the finished part rendered again (a few times at most). The final state is
rendered afresh, in full, exactly once.
"""

from __future__ import annotations

import re
from typing import Any

from ._markdown import HIGHLIGHT_LIMIT, TYPESET_MATH, markdown_html, unfinished_from
from ._sanitize import sanitize

REFERENCE_RERENDERS = 8  # times a late link definition may re-render the finished blocks
OPEN_CODE_HIGHLIGHT_LIMIT = 4_000  # a longer code block in the open tail is shown plain
_LINE_BREAK = re.compile(r"\r\n?|\n")  # as in _markdown


def render_markdown(text: str, *, typeset_math: bool = False) -> str:
    """Markdown to sanitised HTML, in one go. ``typeset_math``: math whose TeX is on the
    allowlist goes to MathJax (in a cell's HTML output), else all math is shown as code."""
    return sanitize(markdown_html(text, {TYPESET_MATH: typeset_math}))


def _line_offset(text: str, line: int) -> int:
    """Where line number ``line`` (counted as markdown-it counts) starts in ``text``."""
    if line == 0:
        return 0
    for number, match in enumerate(_LINE_BREAK.finditer(text), start=1):
        if number == line:
            return match.end()
    return len(text)


class IncrementalMarkdown:
    """Sanitised HTML of a text that only grows: ``render(text)`` after each change,
    ``render(text, final=True)`` once at the end."""

    def __init__(self, *, typeset_math: bool = False) -> None:
        self.typeset_math = typeset_math
        self._reset()

    def _reset(self) -> None:
        self._committed = ""  # the text of the finished blocks
        self._committed_html = ""
        self._references: dict[str, Any] = {}  # link definitions of the finished blocks
        self._rerenders = 0
        self._tail: str | None = None
        self._tail_html = ""
        self._final: tuple[str, str] | None = None

    def render(self, text: str, *, final: bool = False) -> str:
        if final:
            if self._final is None or self._final[0] != text:
                self._final = (text, render_markdown(text, typeset_math=self.typeset_math))
            return self._final[1]
        if not text.startswith(self._committed):
            self._reset()  # not a continuation (a new text): start over
        self._commit(text)
        tail = text[len(self._committed) :]
        if tail != self._tail:
            env = {
                "references": dict(self._references),
                HIGHLIGHT_LIMIT: OPEN_CODE_HIGHLIGHT_LIMIT,  # highlighted once it is finished
                TYPESET_MATH: self.typeset_math,
            }
            self._tail, self._tail_html = tail, sanitize(markdown_html(tail, env))
        return self._committed_html + self._tail_html

    def _commit(self, text: str) -> None:
        """Move the finished blocks at the start of the tail into the cache."""
        tail = text[len(self._committed) :]
        end = max(tail.rfind("\n"), tail.rfind("\r")) + 1
        if end == 0:
            return
        complete = tail[:end]
        finished = complete[: _line_offset(complete, unfinished_from(complete))]
        if not finished:
            return
        known = len(self._references)
        env: dict[str, Any] = {"references": self._references, TYPESET_MATH: self.typeset_math}
        html = sanitize(markdown_html(finished, env))
        late_definition = len(self._references) > known and self._committed
        if late_definition and self._rerenders < REFERENCE_RERENDERS:
            self._rerenders += 1  # earlier blocks may use the new definition
            everything = self._committed + finished
            html = sanitize(markdown_html(everything, {TYPESET_MATH: self.typeset_math}))
            self._committed_html = ""
        self._committed_html += html
        self._committed += finished
