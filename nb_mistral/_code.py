"""The code of a reply, for ``%%mistral -f code``: the first fenced block, and whether the
reply stopped inside it (a block cut by ``max_tokens`` or a stop has no closing fence)."""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt

_parser = MarkdownIt("commonmark")


@dataclass(frozen=True)
class CodeBlock:
    code: str
    closed: bool  # False when the reply ended before the block's closing fence


def first_code_block(markdown: str) -> CodeBlock | None:
    """The first fenced (or indented) code block of a reply, or None when it has none."""
    lines = markdown.splitlines()
    for token in _parser.parse(markdown):
        if token.type not in ("fence", "code_block"):
            continue
        closed = True
        if token.type == "fence" and token.map is not None and token.map[1] >= len(lines):
            last = lines[-1].strip() if token.map[1] - token.map[0] > 1 else ""
            marker = token.markup
            closed = last.startswith(marker) and set(last) == {marker[0]}
        return CodeBlock(token.content.rstrip("\n"), closed)
    return None
