"""Markdown to HTML in the kernel, with markdown-it-py: CommonMark, tables, strikethrough and
dollar math, raw HTML input off. The rules here decide what the output may contain before the
sanitiser checks it: links only to ``http``/``https``/``mailto`` and opening in a new tab,
images as links (rendering fetches nothing), code highlighted by class, math shown as code,
and nesting capped (deeper structure becomes text), so no reply can build a DOM that kills a tab.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin

from ._highlight import highlight_code, language_class
from ._math import math_html

BLOCK_DEPTH = 32  # block tokens deeper than this are kept as a paragraph of text
INLINE_DEPTH = 16  # inline elements (emphasis, links) deeper than this become their text
MAX_NESTING = 40  # markdown-it's own cap on blocks, a safety net above BLOCK_DEPTH
# markdown-it's cap while parsing inline content: link labels are scanned once per level, so
# ``![![![…`` costs about this many times more than ordinary text (25 ms/KB at 40, 8 at 10)
INLINE_NESTING = 10
LINK_REL = "noopener noreferrer nofollow"
HIGHLIGHT_LIMIT = "highlight_limit"  # env key: longest code block to highlight (characters)
TYPESET_MATH = "typeset_math"  # env key: let MathJax typeset math that passes ``typesettable``
LOOSE_LIST = "loose_list"  # env key: the top-level list's items show their paragraphs
_SAFE_URL = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_ALIGN = re.compile(r"text-align:(left|center|right)")
_LINE_BREAK = re.compile(r"\r\n?|\n")  # what markdown-it counts as the end of a line
_DELIMITERS = {"em_open", "em_close", "strong_open", "strong_close", "s_open", "s_close"}

Rules = Sequence[Token]


def _safe_link(url: str) -> bool:
    """Only web and mail links: no script, data, file or relative URLs (markdown-it has
    already decoded entities and percent-encoded the rest)."""
    return _SAFE_URL.match(url) is not None


def _flat_when_deep(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """Past ``BLOCK_DEPTH``, the rest of a nested block is one paragraph of text."""
    if silent or state.level < BLOCK_DEPTH:
        return False
    text = state.getLines(start, end, state.blkIndent, False).strip()
    state.line = end
    if text:
        state.push("paragraph_open", "p", 1).map = [start, end]
        inline = state.push("inline", "", 0)
        inline.content, inline.map, inline.children = text, [start, end], []
        state.push("paragraph_close", "p", -1)
    return True


def _nesting(limit: int) -> Callable[[StateCore], None]:
    """A core rule that sets markdown-it's nesting cap (one option serves blocks and inline)."""

    def rule(state: StateCore) -> None:
        state.md.options["maxNesting"] = limit

    return rule


def _loose_list(state: StateCore) -> None:
    """Items of a top-level list rendered apart from the rest of it show their paragraphs when
    the whole list is loose (markdown-it decides looseness per list, from what it sees)."""
    if state.env.get(LOOSE_LIST):
        for token in state.tokens:
            if token.level == 2 and token.type in ("paragraph_open", "paragraph_close"):
                token.hidden = False


def _cap_inline_depth(state: StateCore) -> None:
    """Inline elements nested deeper than ``INLINE_DEPTH`` (``***…***`` makes thousands)
    become plain text; emphasis keeps its markers as characters."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        depth = 0
        flattened: list[bool] = []
        for token in block.children:
            if token.nesting == 1:
                flatten = depth >= INLINE_DEPTH
                flattened.append(flatten)
                depth += 0 if flatten else 1
            elif token.nesting == -1:
                flatten = flattened.pop() if flattened else True
                depth -= 0 if flatten else 1
            else:
                continue
            if flatten:
                content = token.markup if token.type in _DELIMITERS else ""
                token.type, token.tag, token.nesting, token.content = "text", "", 0, content
                token.attrs = {}


def _link_open(
    renderer: RendererHTML, tokens: Rules, idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Links open in a new tab, so a plain click never navigates JupyterLab away."""
    token = tokens[idx]
    token.attrSet("target", "_blank")
    token.attrSet("rel", LINK_REL)
    return renderer.renderToken(tokens, idx, options, env)


def _image(
    renderer: RendererHTML, tokens: Rules, idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An image as a link to it: nothing in a reply is fetched without a click."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{escapeHtml(src)}" target="_blank" rel="{LINK_REL}">🖼 {escapeHtml(alt)}</a>'


def _fence(
    renderer: RendererHTML, tokens: Rules, idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    language = language_class(token.info)
    # Pygments takes ~7 ms per KB: a long block still being written is shown plain
    highlighted = language if len(token.content) <= env.get(HIGHLIGHT_LIMIT, math.inf) else None
    body = highlight_code(token.content, highlighted and highlighted.removeprefix("language-"))
    opening = f'<code class="{language}">' if language else "<code>"
    return f"<pre>{opening}{body}</code></pre>\n"


def _table_cell(
    renderer: RendererHTML, tokens: Rules, idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Alignment as an ``align`` attribute (the sanitiser allows no ``style``)."""
    token = tokens[idx]
    match = _ALIGN.fullmatch(str(token.attrGet("style") or ""))
    token.attrs = {"align": match.group(1)} if match else {}
    return renderer.renderToken(tokens, idx, options, env)


def _math_inline(
    renderer: RendererHTML, tokens: Rules, idx: int, options: OptionsDict, env: EnvType
) -> str:
    typeset = bool(env.get(TYPESET_MATH))
    return math_html(tokens[idx].content, display=False, typeset=typeset)


def _math_block(
    renderer: RendererHTML, tokens: Rules, idx: int, options: OptionsDict, env: EnvType
) -> str:
    return math_html(tokens[idx].content, display=True, typeset=bool(env.get(TYPESET_MATH)))


def _parser(*, inline: bool) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_NESTING})
    md.enable(["table", "strikethrough"])
    dollarmath_plugin(md, allow_labels=False, allow_digits=False, allow_blank_lines=False)
    md.validateLink = _safe_link  # type: ignore[method-assign]
    md.block.ruler.before("table", "flat_when_deep", _flat_when_deep)
    if not inline:  # block structure only: what the incremental renderer needs, fast
        md.disable(["inline", "text_join"])
        return md
    md.core.ruler.before("normalize", "block_nesting", _nesting(MAX_NESTING))
    md.core.ruler.after("block", "loose_list", _loose_list)
    md.core.ruler.before("inline", "inline_nesting", _nesting(INLINE_NESTING))
    md.core.ruler.after("inline", "cap_inline_depth", _cap_inline_depth)
    rules: dict[str, Any] = {
        "link_open": _link_open,
        "image": _image,
        "fence": _fence,
        "th_open": _table_cell,
        "td_open": _table_cell,
        "math_inline": _math_inline,
        "math_block": _math_block,
    }
    for name, rule in rules.items():
        md.add_render_rule(name, rule)
    return md


_HTML = _parser(inline=True)
_BLOCKS = _parser(inline=False)


def markdown_html(text: str, env: EnvType | None = None) -> str:
    """HTML for Markdown text, not yet sanitised. ``env`` carries link reference definitions
    from one call to the next (the incremental renderer's earlier blocks), and optionally a
    ``HIGHLIGHT_LIMIT`` above which code blocks are not highlighted and ``TYPESET_MATH``."""
    return str(_HTML.render(text, {} if env is None else env))


@dataclass(frozen=True)
class Block:
    """One top-level block of a text: its kind (markdown-it's token type), its lines, and for
    a list the first line of each item and whether it is loose (paragraphs shown)."""

    kind: str
    start: int
    end: int
    items: tuple[int, ...] = ()
    loose: bool = False

    @property
    def is_list(self) -> bool:
        return self.kind in ("bullet_list_open", "ordered_list_open")


def outline(text: str) -> list[Block]:
    """The top-level blocks of ``text``, from a parse of its block structure only."""
    found: list[tuple[str, int, int, list[int], bool]] = []  # kind, start, end, items, loose
    for token in _BLOCKS.parse(text, {}):
        if token.map is None:
            continue
        if token.level == 0 and token.nesting != -1:
            found.append((token.type, token.map[0], token.map[1], [], False))
        elif found and token.level == 1 and token.type == "list_item_open":
            found[-1][3].append(token.map[0])
        elif found and token.level == 2 and token.type == "paragraph_open" and not token.hidden:
            kind, start, end, items, _loose = found[-1]
            found[-1] = (kind, start, end, items, True)
    return [Block(block[0], block[1], block[2], tuple(block[3]), block[4]) for block in found]


def unfinished_from(blocks: list[Block], text: str) -> int:
    """The first line of the part of ``text`` (complete lines, outlined in ``blocks``) that
    more text could still change: its last top-level block, or an earlier one with a ``$$``
    that a later ``$$`` line could turn into display math, swallowing what follows (an
    unclosed fence already runs to the end)."""
    if not blocks:
        return 0
    lines = _LINE_BREAK.split(text)
    for block in blocks[:-1]:
        if block.kind != "math_block" and may_open_math(lines[block.start : block.end]):
            return block.start
    return blocks[-1].start


def may_open_math(lines: list[str]) -> bool:
    """Whether these lines hold a ``$$`` that a display-math block could start from (even
    inside a list item, where markdown-it's dollar-math rule ignores indentation)."""
    return any("$$" in line for line in lines)


def code_of(markdown: str) -> str | None:
    """The code of the first code block of a reply, for ``-f code``."""
    for token in _BLOCKS.parse(markdown, {}):
        if token.type in ("fence", "code_block"):
            return token.content.rstrip("\n")
    return None
