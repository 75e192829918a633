"""Rendering a reply that grows, at a cost per update that does not grow with it.

Top-level blocks that are over (the parser has seen the next block start on a complete line)
are rendered and sanitised once and kept; only the still-open tail is redone on each update.
Block structure is decided line by line, so what follows a finished block cannot change it.
A long list is one block until it ends, so its finished items are kept the same way (rendered
as a list of their own, whose wrapping tags are dropped), and redone once should the list turn
loose. Link reference definitions apply to the whole text: a finished block that defines one
has the finished part rendered again (a few times at most). The final state is rendered afresh,
in full, exactly once.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from ._markdown import (
    HIGHLIGHT_LIMIT,
    LOOSE_LIST,
    TYPESET_MATH,
    Block,
    markdown_html,
    may_open_math,
    outline,
    unfinished_from,
)
from ._sanitize import sanitize

REFERENCE_RERENDERS = 8  # times a late link definition may re-render the finished blocks
TAIL_DEFINITION_RERENDERS = 32  # full renders while the open tail defines a link
OPEN_CODE_HIGHLIGHT_LIMIT = 4_000  # a longer code block in the open tail is shown plain
_LINE_BREAK = re.compile(r"\r\n?|\n")  # as in _markdown
_BLANK_LINE_END = re.compile(r"(?:\r\n?|\n)[ \t]*(?:\r\n?|\n)\Z")
_LIST_HTML = re.compile(r"(<[uo]l[^>]*>\n)(.*)(</[uo]l>\n)\Z", re.DOTALL)


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


@dataclass
class _OpenList:
    """The finished items of the list the tail starts with: its opening tag, their HTML, where
    they end in the tail, and whether they were rendered loose."""

    opening: str
    items_html: str
    end: int
    loose: bool


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
        self._tail_rerenders = 0
        self._list: _OpenList | None = None
        self._shown_key: tuple[int, str] | None = None  # (finished length, tail) last shown
        self._shown = ""
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
        if self._shown_key != (len(self._committed), tail):
            self._shown_key = (len(self._committed), tail)
            html, defines = self._render_tail(tail)
            if defines and self._committed and self._tail_rerenders < TAIL_DEFINITION_RERENDERS:
                self._tail_rerenders += 1  # the finished blocks may use the new definition
                self._shown = render_markdown(text, typeset_math=self.typeset_math)
            else:
                self._shown = self._committed_html + html
        return self._shown

    def _env(self, **extra: Any) -> dict[str, Any]:
        return {"references": dict(self._references), TYPESET_MATH: self.typeset_math, **extra}

    def _render_tail(self, tail: str) -> tuple[str, bool]:
        """The open tail's HTML, and whether it defines a link the finished part lacks."""
        env = self._env(**{HIGHLIGHT_LIMIT: OPEN_CODE_HIGHLIGHT_LIMIT})  # highlighted later
        known = len(env["references"])
        if self._list is not None:
            env[LOOSE_LIST] = self._list.loose
            rest = _LIST_HTML.match(sanitize(markdown_html(tail[self._list.end :], env)))
            if rest is not None and len(env["references"]) == known:
                shown = self._list.opening + self._list.items_html + rest.group(2) + rest.group(3)
                return shown, False
            self._list = None  # not the shape a list's last items have: render it all
            env = self._env(**{HIGHLIGHT_LIMIT: OPEN_CODE_HIGHLIGHT_LIMIT})
        html = sanitize(markdown_html(tail, env))
        return html, len(env["references"]) > known

    def _commit(self, text: str) -> None:
        """Move the finished blocks at the start of the tail into the cache, and the finished
        items of a list that is still open."""
        tail = text[len(self._committed) :]
        end = max(tail.rfind("\n"), tail.rfind("\r")) + 1
        if end == 0:
            return
        complete = tail[:end]
        if self._list is not None and self._commit_more_items(complete):
            return
        blocks = outline(complete)
        finished = complete[: _line_offset(complete, unfinished_from(blocks, complete))]
        if finished:
            self._commit_blocks(finished)
            blocks = outline(complete[len(finished) :])
            complete = complete[len(finished) :]
        self._list = None  # (re)built from the whole list, if the tail is one
        if len(blocks) == 1 and blocks[0].is_list:
            self._commit_items(complete, 0, blocks[0], blocks[0].loose)

    def _commit_blocks(self, finished: str) -> None:
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

    def _commit_more_items(self, complete: str) -> bool:
        """With some items of the open list kept, parse only the rest of it (parsing all of a
        long list on every update is what this saves). False when the rest is not that list
        going on as it was: then the whole tail is looked at again."""
        assert self._list is not None
        rest = complete[self._list.end :]
        blocks = outline(rest)
        if len(blocks) != 1 or not blocks[0].is_list or blocks[0].start != 0:
            return False
        done = complete[max(0, self._list.end - 1000) : self._list.end]
        loose = blocks[0].loose or _BLANK_LINE_END.search(done) is not None
        if loose != self._list.loose:
            return False  # the list turned loose: all its items show paragraphs now
        self._commit_items(rest, self._list.end, blocks[0], loose)
        return True

    def _commit_items(self, text: str, base: int, block: Block, loose: bool) -> None:
        """Keep the HTML of the items of the list ``text`` starts with (``base`` characters
        into the tail) but the last, which may still grow (and any from one with a ``$$``)."""
        lines = _LINE_BREAK.split(text)
        last = len(block.items) - 1
        for index, (first, after) in enumerate(itertools.pairwise(block.items)):
            if may_open_math(lines[first:after]):
                last = index
                break
        end = _line_offset(text, block.items[last]) if last > 0 else 0
        if end == 0:
            return
        env = self._env(**{LOOSE_LIST: loose})
        known = len(env["references"])
        items = _LIST_HTML.match(sanitize(markdown_html(text[:end], env)))
        if items is None or len(env["references"]) != known:
            self._list = None  # a definition or an unexpected shape: the tail renders it all
            return
        if self._list is None:
            self._list = _OpenList(items.group(1), items.group(2), base + end, loose)
        else:
            self._list.items_html += items.group(2)
            self._list.end = base + end
