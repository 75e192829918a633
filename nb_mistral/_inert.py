"""Make untrusted model Markdown inert while keeping its formatting.

Model output is shown as ``text/markdown`` (JupyterLab, Notebook, VS Code, GitHub)
and in ipywidgets; JupyterLab runs event-handler JavaScript from trusted Markdown
outputs, so no HTML from the model may survive as markup.  :func:`inert_markdown`
escapes every raw-HTML construct outside code as ``&lt;``, keeps code byte for byte,
neutralizes links with dangerous schemes and leaves ordinary Markdown untouched.

Why it is safe, not just plausible: after transforming, the result is *checked* by
re-parsing it with markdown-it (CommonMark + GFM tables, HTML enabled, every link
accepted) and by an emulation of JupyterLab's math extraction (which hides ``$…$``
from its Markdown parser and pastes it back afterwards).  If the check finds any
HTML token, dangerous link, unsafe fence info string or math pasted into an
attribute, the text is escaped more strictly and checked again; as a last resort
the whole reply is shown as one fenced code block, which is inert by construction.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_left, bisect_right
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["inert_markdown"]


def _make_parser() -> MarkdownIt:
    """Block-level CommonMark parser; inline content is parsed only where needed."""
    md = MarkdownIt("commonmark", {"html": True, "maxNesting": 64}).enable("table")
    # Accept every URL so that dangerous links become tokens we can inspect,
    # instead of plain text that another renderer might still turn into a link.
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    md.disable(["inline", "text_join"])
    return md


_MD = _make_parser()

# --- lexical rules -------------------------------------------------------------------

# A "<" that might start HTML in some CommonMark-ish parser (cheap pre-filter).
_LT_CANDIDATE = re.compile(r"<[A-Za-z/!?]")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{1,31}):")
_SAFE_AUTOLINK_SCHEMES = frozenset({"http", "https", "mailto", "ftp"})
_URI_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}):[^\x00-\x20<>]*>")
_EMAIL_AUTOLINK = re.compile(
    r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*>"
)
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_BLANKISH = re.compile(r"[ \t>]*(?:\r\n|\r|\n)?\Z")
# A line that some parser could read as a fence opener whose info string has a quote
# (JupyterLab pastes the info string unescaped into a class="..." attribute).
_FENCE_QUOTE = re.compile(
    r"^[ \t>*+\-0-9.)]*(?:`{3,}(?=[^`\r\n]*(?:\r|\n|\Z))|~{3,})[^\r\n]*\"", re.M
)
_FENCE_RUN = re.compile(r"`{3,}|~{3,}")


def _live_lt(s: str, p: int) -> bool:
    """True if the ``<`` at ``s[p]`` could open HTML or an unsafe autolink.

    HTML needs ``<`` + ``/``, ``!``, ``?``, or a tag name followed by whitespace,
    ``/``, ``>`` or the end of the line (CommonMark, marked and cmark agree on this),
    so ``$a<b$`` or ``x<y+1`` stay untouched.
    """
    q = p + 1
    if q >= len(s):
        return False
    c = s[q]
    if c in "/!?":
        return True
    if not ("a" <= c <= "z" or "A" <= c <= "Z"):
        return False
    e = _TAG_NAME.match(s, q).end()  # type: ignore[union-attr]
    if e >= len(s):
        return True
    d = s[e]
    if d.isspace() or d in "/>\ufeff":
        return True
    if d in ":+.":
        m = _SCHEME.match(s, q)
        return m is not None and m.group(1).lower() not in _SAFE_AUTOLINK_SCHEMES
    return False


def _has_live_lt(s: str) -> bool:
    return any(_live_lt(s, m.start()) for m in _LT_CANDIDATE.finditer(s))


# --- dangerous URLs ------------------------------------------------------------------

_BAD_SCHEME = re.compile(r"(?:javascript|vbscript|data|file):")
_GOOD_IMAGE_DATA = re.compile(r"data:image/(?:png|gif|jpeg|webp)[;,]")
# Whitespace and controls that browsers strip from or ignore in URLs (and a few more).
_URL_JUNK = re.compile(r"[\s\x00-\x20\x7f-\x9f\u200b-\u200f\u2028-\u202f\u2060\ufeff]+")
# For the whole-text pre-filter: also container markers and backslashes.
_FOLD_JUNK = re.compile(r"[\s\x00-\x20\x7f-\x9f\u200b-\u200f\u2028-\u202f\u2060\ufeff>\\]+")
# A dangerous destination right after "](", "]:" (reference definition) or "<".
_FOLD_FLAG = re.compile(r"(?:\]\(<?|\]:<?|<)(?:javascript|vbscript|data|file):")
# For links (data: raster images are fine in images, and harmless in links).
_FOLD_LINK_FLAG = re.compile(
    r"\][(:]<?(?:(?:javascript|vbscript|file):|data:(?!image/(?:png|gif|jpeg|webp)[;,]))"
)


def _decode_rounds(s: str, rounds: int) -> list[str]:
    """``s`` and its entity/percent-decoded forms (renderers differ in how often they
    decode: markdown-it decodes entities, marked leaves them to the browser)."""
    out = [s]
    for _ in range(rounds):
        t = s
        if "&" in t:
            t = html.unescape(t)
        if "%" in t:
            t = unquote(t)
        if t == s:
            break
        out.append(t)
        s = t
    return out


def _dangerous_url(url: str, image: bool = False) -> bool:
    for v in _decode_rounds(url, 3):
        v = _URL_JUNK.sub("", v).lower()
        if _BAD_SCHEME.match(v) and not (image and _GOOD_IMAGE_DATA.match(v)):
            return True
    return False


def _fold_flag(s: str, pattern: re.Pattern[str] = _FOLD_FLAG) -> bool:
    """Conservative: True whenever some link in ``s`` could get a dangerous URL.

    Any such URL is a decoded substring of a destination, which follows ``](``,
    ``]:`` or ``<`` up to whitespace and container markers; decoding and stripping
    the whole text the same way (and more) therefore keeps that pattern visible.
    """
    if "]" not in s and "<" not in s:
        return False
    f = _decode_rounds(s, 4)[-1]
    return pattern.search(_FOLD_JUNK.sub("", f).lower()) is not None


# --- JupyterLab math emulation -------------------------------------------------------
# JupyterLab (@jupyterlab/rendermime latex.ts, removeMath/replaceMath) cuts $...$,
# $$...$$, \\(...\\), \\[...\\] and \begin{..}...\end{..} out of the Markdown before
# `marked` sees it and pastes the (HTML-escaped, but not quote-escaped) math back
# into marked's HTML afterwards.  We port removeMath to check what marked receives.

_JS_WS = "\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_LT = "\n\r\u2028\u2029"
_JS_BOL = rf"(?<![^{_JS_LT}])"
_JS_EOL = rf"(?![^{_JS_LT}])"
_JL_FENCE = re.compile(
    _JS_BOL + r"(?P<fence>`{3,}|(?:~T){3,})[^`\n]*\n[\s\S]*?" + _JS_BOL + r"(?P=fence)`*" + _JS_EOL
)
_JL_SPAN = re.compile(r"(?:" + _JS_BOL + r"|[^\\])(`+)(?:[^\n]*?[^`\n])\1(?!`)")
_JL_SPLIT = re.compile(
    r"(\$\$?|\\(?:begin|end)\{[a-z]*\*?\}|\\[{}$]|[{}]|(?:\n[" + _JS_WS + r"]*)+"
    r"|@@\d+@@|\\\\[()\[\]])",
    re.I | re.A,
)
_JL_LINES = re.compile(r"[^\n]*\n|[^\n]+")
_JL_TWO_NL = re.compile(r"\n[^\n\r\u2028\u2029]*\n")
_MATH_HINT = re.compile(r"\$|\\\\[(\[]|\\begin\{", re.I)
_JL_DETILDE = re.compile(r"~([TD])")


def _jl_detilde(s: str) -> str:
    return _JL_DETILDE.sub(lambda m: "~" if m.group(1) == "T" else "$", s)


def _remove_math(text: str) -> tuple[str, list[str]]:
    """Port of JupyterLab's ``removeMath``: (text given to marked, math segments)."""
    math: list[str] = []
    coded = "`" in text or "~~~" in text
    if coded:
        text = text.replace("~", "~T")
        if "$" in text:  # the substitutions below only ever change "$"
            text = _JL_FENCE.sub(lambda m: m.group(0).replace("$", "~D"), text)
            # Code-span matches never cross "\n": only lines with "`" and "$" matter.
            text = "".join(
                _JL_SPAN.sub(lambda m: m.group(0).replace("$", "~D"), part)
                if "`" in part and "$" in part
                else part
                for part in _JL_LINES.findall(text)
            )
    blocks = _JL_SPLIT.split(text.replace("\r\n", "\n").replace("\r", "\n"))

    def process(i: int, j: int) -> None:
        block = "".join(blocks[i : j + 1])
        block = block.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        while j > i:
            blocks[j] = ""
            j -= 1
        blocks[i] = f"@@{len(math)}@@"
        math.append(_jl_detilde(block) if coded else block)

    start: int | None = None
    end: str | None = None
    last: int | None = None
    braces = 0
    i = 1
    n = len(blocks)
    while i < n:
        block = blocks[i]
        if block[:1] == "@":
            blocks[i] = f"@@{len(math)}@@"
            math.append(block)
        elif start is not None:
            if block == end:
                if braces:
                    last = i
                else:
                    process(start, i)
                    start = end = last = None
            elif _JL_TWO_NL.search(block):
                if last is not None:
                    i = last
                    process(start, i)
                start = end = last = None
                braces = 0
            elif block == "{":
                braces += 1
            elif block == "}" and braces:
                braces -= 1
        elif block in ("$", "$$"):
            start, end, braces = i, block, 0
        elif block in ("\\\\(", "\\\\["):
            start, braces = i, 0
            end = "\\\\)" if block[-1] == "(" else "\\\\]"
        elif block[1:6] == "begin":
            start, end, braces = i, "\\end" + block[6:], 0
        i += 2
    if start is not None and last is not None:
        process(start, last)
    joined = "".join(blocks)
    return (_jl_detilde(joined) if coded else joined), math


# --- block structure -----------------------------------------------------------------

_LEAF = frozenset({"paragraph_open", "heading_open", "html_block", "table_open", "hr"})
# A line that `marked` might open or close a fence with, whatever its container.
_FENCE_LIKE = re.compile(r"[ \t>]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)*(?:`{3,}|~{3,})")
_DELIM_ROW = re.compile(
    r"[ \t>]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)*"
    r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*(?:\r\n|\r|\n)?\Z"
)
_CONTAINER_LIKE = re.compile(r"[ \t]*(?:>|(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$))", re.M)
# Container prefix (quotes, list markers, indentation): parsers disagree when it
# holds a tab (tab stops; marked does not even see a tab-only line as blank).
_PREFIX = re.compile(r"[ \t>]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+[ \t>]*)*")
_MARKER = re.compile(r"[-*+0-9.)]")


def _fence_trusted(lines: list[str], a: int, b: int, markup: str, at_eof: bool) -> bool:
    """True if every common renderer sees this markdown-it fence as the same code.

    `marked` closes a fence on any line starting with the opening run followed by
    more fence characters ("~~~`"), not on trailing tabs, and handles containers a
    little differently; so we require a plain layout: no tabs in the prefix, every
    line continuing the opener's container prefix, no line `marked` could close on
    before the end, and a plain closing line (or the end of the text).
    """
    opener = lines[a]
    k = opener.find(markup[:3])
    prefix = opener[:k]
    if "\t" in prefix:
        return False
    cont = _MARKER.sub(" ", prefix)
    quoted = ">" in cont
    closer = re.compile(
        r" {0,3}" + re.escape(markup[0]) + "{" + str(len(markup)) + r",}[ \t]*(?:\r\n|\r|\n)?\Z"
    )
    marked_closer = re.compile(r" {0,3}" + re.escape(markup) + r"[~`]* *(?:\r\n|\r|\n)?\Z")
    closed = False
    for j in range(a + 1, b):
        line = lines[j]
        if not line.strip():
            if quoted:
                return False
            continue
        if not line.startswith(cont):
            return False
        rest = line[len(cont) :]
        if j == b - 1 and closer.match(rest):
            closed = True
            if "\t" in rest or not marked_closer.match(rest):
                return False
        elif marked_closer.match(rest):
            return False
    return closed or at_eof


class _Doc:
    """Lines of a text plus where markdown-it puts code blocks and leaf blocks.

    Code blocks that another renderer might delimit differently are demoted to text
    (escaped like the rest), and so is every code block after such a one.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: list[str] = _LINE.findall(text)
        self.starts: list[int] = []
        pos = 0
        for line in self.lines:
            self.starts.append(pos)
            pos += len(line)
        self.env: dict = {}
        self.tokens: list[Token] = _MD.parse(text, self.env) if text else []
        lines = self.lines
        n = len(lines)
        # kind: 0 = not in any leaf (reference definitions, skipped nesting),
        # 1 = code content/closing fence, 2 = fence opener, 3 = table row, 4 = text leaf,
        # 5 = code block not every renderer agrees on (escaped, no code spans trusted).
        self.kind = [0] * n
        self.group = list(range(n))
        self.fence_markup: dict[int, str] = {}
        self.html_block = False
        refs = list(self.env.get("references", {}).values())
        refs += self.env.get("duplicate_refs", [])
        ref_lines = {k for ref in refs for k in range(*ref["map"])}
        # Lines from which other renderers may see a different block structure:
        # fence-like lines outside code, tabs in a container prefix, tables in
        # lists or quotes.  Code blocks after such a line are not trusted.
        suspect = {
            k
            for k, line in enumerate(lines)
            if _FENCE_LIKE.match(line) or "\t" in _PREFIX.match(line).group(0)  # type: ignore[union-attr]
        }
        suspect.update(
            t.map[0] for t in self.tokens if t.type == "table_open" and t.level and t.map
        )
        fence_like = sorted(suspect)
        # Lines any parser might take for a list item or block quote: they decide
        # whether a later indented line is code or a continuation, and parsers
        # disagree (marked lets "10." interrupt a paragraph, CommonMark does not).
        container_like = [k for k, line in enumerate(lines) if _CONTAINER_LIKE.match(line)]
        cl = 0
        containers = False
        contained = [False] * n  # inside a list item or block quote
        for tok in self.tokens:
            if tok.map is not None and tok.type in ("blockquote_open", "list_item_open"):
                for k in range(tok.map[0], min(tok.map[1], n)):
                    contained[k] = True
        fl = 0  # fence-like lines before this one are accounted for
        doubt = False  # once a code block is ambiguous, trust none after it
        doubt_at: int | None = None
        for tok in self.tokens:
            if tok.map is None:
                continue
            a, b = tok.map[0], min(tok.map[1], n)
            t = tok.type
            if t in ("fence", "code_block"):
                # A suspect line outside any code block before this one: marked may
                # have opened a fence there, or ended a list differently, shifting
                # everything after it.
                while fl < len(fence_like) and fence_like[fl] < a:
                    if self.kind[fence_like[fl]] not in (1, 2):
                        if doubt_at is None:
                            doubt_at = fence_like[fl]
                        doubt = True
                    fl += 1
                if t == "fence":
                    ok = _fence_trusted(lines, a, b, tok.markup, b >= n)
                else:
                    while cl < len(container_like) and container_like[cl] < a:
                        if self.kind[container_like[cl]] not in (1, 2):
                            containers = True
                        cl += 1
                    # No list or quote anywhere before it; top level, after a blank
                    # line, and the block before it neither
                    # a list or quote (marked may continue those) nor a table or a
                    # reference definition (paragraph-like for some parsers).
                    p = a - 1
                    while p >= 0 and not lines[p].strip():
                        p -= 1
                    ok = (not containers and tok.level == 0) and (
                        p < 0
                        or (
                            p < a - 1
                            and not contained[p]
                            and self.kind[p] != 3
                            and p not in ref_lines
                        )
                    )
                if doubt or not ok:
                    if doubt_at is None:
                        doubt_at = a
                    doubt = True
                    for k in range(a, b):
                        self.kind[k] = 5
                        self.group[k] = a
                    continue
                for k in range(a, b):
                    self.kind[k] = 1
                if t == "fence" and a < n:
                    self.kind[a] = 2
                    self.fence_markup[a] = tok.markup
            elif t == "table_open":
                for k in range(a, b):
                    self.kind[k] = 3
            elif t in _LEAF:
                if t == "html_block":
                    self.html_block = True
                g = a
                for k in range(a, b):
                    self.kind[k] = 4
                    self.group[k] = g
                    if t == "html_block" and _BLANKISH.match(lines[k]):
                        g = k + 1
        while fl < len(fence_like):
            if self.kind[fence_like[fl]] not in (1, 2):
                break
            fl += 1
        first = fence_like[fl] if fl < len(fence_like) else None
        if doubt_at is not None:
            first = doubt_at if first is None else min(first, doubt_at)
        # A table delimiter row anywhere: any paragraph line might be a table row
        # for some parser, splitting code spans at pipes.
        self.tables = any(
            self.kind[k] != 1 and ("|" in line or ":" in line) and _DELIM_ROW.match(line)
            for k, line in enumerate(lines)
        )
        # From here on block structure may differ between renderers, and with it
        # which backticks pair up: trust no code span from just before this line.
        self.doubt_from = n + 1 if first is None else max(first - 1, 0)
        for ref in refs:
            a, b = ref["map"]
            for k in range(a, min(b, n)):
                if self.kind[k] == 0:
                    self.group[k] = a

    def inline_tokens(self) -> list[Token]:
        return [t for t in self.tokens if t.type == "inline"]


def _inline_children(doc: _Doc, tok: Token) -> list[Token]:
    if not tok.children:
        children: list[Token] = []
        _MD.inline.parse(tok.content, _MD, doc.env, children)
        tok.children = children
    return tok.children


# --- transformation ------------------------------------------------------------------


def _backtick_runs(s: str) -> dict[int, list[int]]:
    runs: dict[int, list[int]] = {}
    for m in re.finditer(r"`+", s):
        runs.setdefault(m.end() - m.start(), []).append(m.start())
    return runs


_SPECIALS = {
    (b, m): re.compile("[\\\\`<" + ("\\[" if b else "") + ("$" if m else "") + "]")
    for b in (False, True)
    for m in (False, True)
}
_JS_SPACE = re.compile(f"[{_JS_WS}]")
# Before a code span, these let `marked` (JupyterLab) swallow the opening backtick:
# a bare URL (GFM autolink literal, which eats backticks and backslashes), a ``~``
# run (text or strikethrough), an earlier backtick, or raw HTML.
_SPAN_SPOILER = re.compile(r"[~`<]|://|www\.", re.I)


class _Trust:
    """Decides whether a CommonMark code span is a code span for every renderer.

    `marked` does not give code spans CommonMark's precedence (bare URLs, ``~``
    runs and strikethrough can take the opening backtick), so a raw ``<`` stays in
    a code span only when nothing in the same word before it can do that, and the
    span is on one line without further backticks (nor tildes after a tilde).
    """

    def __init__(self, s: str, pipes: bool) -> None:
        self.s = s
        self.pipes = pipes
        self.first_tilde = s.find("~")
        self._ws: list[int] | None = None
        self._spoil: list[int] | None = None

    def __call__(self, opener: int, content: int, closer: int) -> bool:
        s = self.s
        body = s[content:closer]
        if "\n" in body or "\r" in body or "`" in body:
            return False
        if "~" in body and 0 <= self.first_tilde < opener:
            return False  # marked's strikethrough could end inside the span
        if self.pipes and "|" in body:
            return False  # another parser may see a table row and split the span
        if self._ws is None:
            self._ws = [m.start() for m in _JS_SPACE.finditer(s)]
            self._spoil = [m.end() - 1 for m in _SPAN_SPOILER.finditer(s)]
        k = bisect_left(self._ws, opener)
        word_start = self._ws[k - 1] + 1 if k else 0
        spoil = self._spoil or []
        j = bisect_left(spoil, word_start)
        return j >= len(spoil) or spoil[j] >= opener


def _escape_code_body(body: str, brackets: bool, math: bool) -> str:
    """Escape inside a code span that another renderer may not treat as code."""
    out = body
    if "<" in out:
        parts = []
        last = 0
        for m in _LT_CANDIDATE.finditer(out):
            if _live_lt(out, m.start()):
                parts.append(out[last : m.start()] + "&lt;")
                last = m.start() + 1
        out = "".join(parts) + out[last:]
    if brackets:
        out = out.replace("[", "\\[")
    if math:
        out = out.replace("$", "&#36;")
    return out


def _escape_inline(
    s: str,
    spans: bool,
    brackets: bool,
    math: bool,
    level: int,
    doubt: bool = False,
    pipes: bool = True,
) -> tuple[str, bool]:
    """Escape live ``<`` (and optionally ``[`` and math delimiters) outside code.

    Scans left to right with CommonMark's rules for backslash escapes, code spans
    (a backtick run closed by the next run of equal length) and autolinks.  Code
    spans that another renderer might parse differently are escaped inside too.
    """
    pat = _SPECIALS[brackets, math]
    runs = _backtick_runs(s) if spans and "`" in s else {}
    trust = _Trust(s, pipes) if runs else None
    out: list[str] = []
    last = 0
    i = 0
    n = len(s)
    while True:
        m = pat.search(s, i)
        if m is None:
            break
        p = m.start()
        c = s[p]
        if c == "\\":
            if math and s.startswith("\\\\", p) and p + 2 < n and s[p + 2] in "()[]":
                ent = {"(": "&#40;", ")": "&#41;", "[": "&#91;", "]": "&#93;"}[s[p + 2]]
                out.append(s[last : p + 2] + ent)
                last = i = p + 3
                continue
            if math and re.match(r"\\(?:begin|end)\{", s[p : p + 7], re.I):
                q = s.index("{", p)
                out.append(s[last:q] + "&#123;")
                last = i = q + 1
                continue
            if level < 2 and p + 1 < n and s[p + 1] in _ASCII_PUNCT:
                if s[p + 1] == "<" and _live_lt(s, p + 1):
                    # "\<" is literal in CommonMark, but a bare URL in `marked` can
                    # swallow the backslash: use the entity instead.
                    out.append(s[last:p] + "&lt;")
                    last = p + 2
                i = p + 2
            else:
                i = p + 1
        elif c == "`":
            e = p
            while e < n and s[e] == "`":
                e += 1
            i = e
            starts = runs.get(e - p)
            k = bisect_left(starts, e) if starts else 0
            if spans and not (starts and k < len(starts)):
                doubt = True  # an unpaired backtick: marked may pair it elsewhere
            if starts and k < len(starts):
                q = starts[k]
                i = q + (e - p)
                if trust is not None and (doubt or not trust(p, e, q)):
                    # marked may pair every later backtick differently too.
                    doubt = True
                    body = s[e:q]
                    escaped = _escape_code_body(body, brackets, math)
                    if escaped != body:
                        out.append(s[last:e] + escaped)
                        last = q
        elif c == "<":
            if level < 2:
                a = _URI_AUTOLINK.match(s, p)
                if a and a.group(1).lower() in _SAFE_AUTOLINK_SCHEMES:
                    i = a.end()
                    continue
                a = _EMAIL_AUTOLINK.match(s, p)
                if a:
                    i = a.end()
                    continue
            live = _live_lt(s, p)
            if not live and level >= 2:
                live = p + 1 < n and _LT_CANDIDATE.match(s, p) is not None
            if live:
                out.append(s[last:p] + "&lt;")
                last = p + 1
            i = p + 1
        elif c == "[":
            out.append(s[last:p] + "\\[")
            last = i = p + 1
        else:  # "$"
            out.append(s[last:p] + "&#36;")
            last = i = p + 1
    if not out:
        return s, doubt
    out.append(s[last:])
    return "".join(out), doubt


def _cells(row: str) -> list[str]:
    """Split a table row at every pipe that markdown-it *or* marked may split at.

    markdown-it treats a pipe after a backslash as escaped, marked only after an odd
    number of backslashes; splitting at either keeps code spans from spanning cells.
    """
    parts = []
    start = 0
    for k, ch in enumerate(row):
        if ch != "|":
            continue
        slashes = 0
        while k - slashes > 0 and row[k - slashes - 1] == "\\":
            slashes += 1
        if slashes == 0 or slashes % 2 == 0:
            parts.append(row[start:k])
            parts.append("|")
            start = k + 1
    parts.append(row[start:])
    return parts


def _sanitize_info(line: str, at: int, math: bool) -> str:
    """Entity-escape quotes and ``<`` in a fence info string (markdown-it decodes them
    back, JupyterLab pastes the raw string into an attribute)."""
    head, info = line[:at], line[at:]
    info = info.replace('"', "&quot;").replace("<", "&lt;")
    if math:
        info = info.replace("$", "&#36;")
    return head + info


def _fence_info_at(line: str, markup: str) -> int:
    k = line.find(markup[:3])
    if k < 0:
        return len(line)
    e = k
    while e < len(line) and line[e] == markup[0]:
        e += 1
    return e


def _transform(
    doc: _Doc,
    level: int,
    brackets: bool,
    math: bool,
    fences: bool = True,
    lines: list[str] | None = None,
) -> str:
    """Escape everything outside markdown-it's code blocks; keep code blocks verbatim.

    With ``fences=False`` only ``<`` is handled (used to check a fixpoint).  ``lines``
    (default: the document's own) lets the block structure of an escaped text be
    applied to the original lines: escaping never adds or removes line breaks.
    """
    lines = doc.lines if lines is None else lines
    kind = doc.kind
    out: list[str] = []
    spans = level == 0
    doubt = False
    n = len(lines)
    k = 0
    while k < n:
        kd = kind[k]
        line = lines[k]
        if kd == 1:
            out.append(line)
            k += 1
        elif kd == 2:
            at = _fence_info_at(line, doc.fence_markup.get(k, "```"))
            if fences and (any(ch in line[at:] for ch in '"<') or (math and "$" in line[at:])):
                line = _sanitize_info(line, at, math)
            out.append(line)
            k += 1
        elif kd == 3:
            doubt = doubt or k >= doc.doubt_from
            for part in _cells(line):
                if part != "|":
                    part, doubt = _escape_inline(
                        part, spans, brackets, math, level, doubt, doc.tables
                    )
                out.append(part)
            k += 1
        else:
            g = doc.group[k]
            j = k + 1
            while j < n and kind[j] == kd and doc.group[j] == g:
                j += 1
            chunk = "".join(lines[k:j])
            if fences and _FENCE_QUOTE.search(chunk):
                chunk = "".join(_sanitize_fence_like(x, math) for x in lines[k:j])
            doubt = doubt or j > doc.doubt_from
            chunk, doubt = _escape_inline(
                chunk, spans and kd != 5, brackets, math, level, doubt, doc.tables
            )
            out.append(chunk)
            k = j
    return "".join(out)


def _sanitize_fence_like(line: str, math: bool) -> str:
    if not _FENCE_QUOTE.match(line):
        return line
    m = _FENCE_RUN.search(line)
    return _sanitize_info(line, m.end(), math) if m else line


# --- verification --------------------------------------------------------------------


def _html_problem(doc: _Doc, fixpoint: bool = False) -> bool:
    if not _has_live_lt(doc.text):
        return False
    if doc.html_block:
        return True
    for tok in doc.inline_tokens():
        if _has_live_lt(tok.content) and any(
            c.type == "html_inline" for c in _inline_children(doc, tok)
        ):
            return True
    # Parser-independent: every live "<" outside code blocks must sit in a code span
    # that all renderers agree on, i.e. escaping again must change nothing.  This also
    # covers lines markdown-it does not inline-parse (reference definitions, content
    # beyond the nesting limit).
    # Fence info strings count too (we escape "<" and quotes there).
    return not fixpoint and _transform(doc, 0, False, False) != doc.text


def _link_tokens(tokens: list[Token]) -> list[Token]:
    found = []
    for t in tokens:
        if t.type in ("link_open", "image"):
            found.append(t)
        if t.children:
            found.extend(_link_tokens(t.children))
    return found


def _link_problem(doc: _Doc) -> bool:
    if not _fold_flag(doc.text):
        return False
    for ref in doc.env.get("references", {}).values():
        if _dangerous_url(ref.get("href") or ""):
            return True
    for tok in doc.inline_tokens():
        if _fold_flag(tok.content):
            for t in _link_tokens(_inline_children(doc, tok)):
                url = t.attrGet("href" if t.type == "link_open" else "src")
                if _dangerous_url(str(url or ""), image=t.type == "image"):
                    return True
    return False


def _info_problem(doc: _Doc) -> bool:
    text = doc.text
    if not _FENCE_QUOTE.search(text):
        return False
    for k, line in enumerate(doc.lines):
        if doc.kind[k] != 1 and '"' in line and _FENCE_QUOTE.match(line):
            return True
    return False


_URL_START = re.compile(r"://|www\.", re.I)
_URL_STOP = re.compile(f"[{_JS_WS}<]")


def _placeholder_problem(doc: _Doc, bad: set[str]) -> bool:
    """True unless every math placeholder in ``bad`` lands in plain text or code.

    JupyterLab pastes math back without escaping quotes, so math holding ``"`` must
    not end up in an attribute: a link or image URL or title, an image's alt text,
    a fence info string, or a bare URL that `marked` turns into a link.
    """
    text = doc.text
    total: dict[str, int] = {}
    stops = [m.end() for m in _URL_STOP.finditer(text)]
    urls = [(m.start(), m.end()) for m in _URL_START.finditer(text)]
    for m in re.finditer(r"@@\d+@@", text):
        ph = m.group(0)
        if ph not in bad:
            continue
        line = bisect_right(doc.starts, m.start()) - 1
        kind = doc.kind[line] if 0 <= line < len(doc.kind) else 0
        if kind == 1:
            continue  # content of a code block every renderer agrees on
        if kind in (2, 5) or _FENCE_LIKE.match(doc.lines[line]):
            return True  # a fence info string, or a block we are not sure of
        # marked's bare URLs run from "www." or "scheme://" to whitespace or "<",
        # through code spans and escapes: look at the raw word.
        k = bisect_right(stops, m.start()) - 1
        word = max(stops[k] if k >= 0 else 0, doc.starts[line])
        k = bisect_left(urls, (word, 0))
        if k < len(urls) and urls[k][1] <= m.start():
            return True
        total[ph] = total.get(ph, 0) + 1
    if not total:
        return False
    seen: dict[str, int] = {}
    for tok in doc.inline_tokens():
        if "@@" in tok.content:
            for c in _inline_children(doc, tok):
                if c.type in ("text", "text_special", "code_inline"):
                    for m in re.finditer(r"@@\d+@@", c.content):
                        if m.group(0) in bad:
                            seen[m.group(0)] = seen.get(m.group(0), 0) + 1
    # Anything not seen as plain text sits in a URL, title, alt text or the like.
    return any(seen.get(ph, 0) < cnt for ph, cnt in total.items())


# What a math segment may hold for its removal to leave marked's view of the text
# unchanged: no backticks, tildes, pipes, brackets, quotes, ">", tag-like "<" or
# line breaks (segments are HTML-escaped here).
_COMPLEX_MATH = re.compile(r"[`~|\[\]\"\n\r]|&lt;[A-Za-z/!?]|&gt;")


def _problems(text: str, doc: _Doc | None, fixpoint: bool = False) -> set[str]:
    """What still makes ``text`` unsafe: 'html', 'link', 'info' or 'math'.

    ``fixpoint``: escaping ``<`` again is already known to change nothing.
    """
    found: set[str] = set()
    live = _has_live_lt(text)
    links = _fold_flag(text)
    quotes = '"' in text
    if live or links or (quotes and _FENCE_QUOTE.search(text)):
        doc = doc or _Doc(text)
        if live and _html_problem(doc, fixpoint):
            found.add("html")
        if links and _link_problem(doc):
            found.add("link")
        if quotes and _info_problem(doc):
            found.add("info")
    # JupyterLab's math extraction: HTML needs a live "<", a bad link a flagged
    # destination, an attribute breakout a quote.
    if (live or links or quotes) and _MATH_HINT.search(text):
        jl_text, segments = _remove_math(text)
        if jl_text != text:
            bad = {f"@@{i}@@" for i, seg in enumerate(segments) if '"' in seg}
            complex_math = any(_COMPLEX_MATH.search(seg) for seg in segments)
            # Math over a line break joins lines: a quote may land in an info string.
            joins = quotes and any("\n" in seg for seg in segments)
            if bad or joins or (complex_math and (live or links)):
                jl = _Doc(jl_text)
                if (
                    _html_problem(jl)
                    or _link_problem(jl)
                    or _info_problem(jl)
                    or (bad and _placeholder_problem(jl, bad))
                ):
                    found.add("math")
    return found


# --- entry point ---------------------------------------------------------------------


def _as_code_block(text: str) -> str:
    """Last resort: the whole reply as one fenced code block (inert in any renderer)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}\n{body}{fence}\n"


def _needs_work(text: str) -> bool:
    """Cheap proof that ``text`` is already inert (the common case while streaming)."""
    if _has_live_lt(text) or _fold_flag(text) or _FENCE_QUOTE.search(text):
        return True
    if '"' in text and _MATH_HINT.search(text):
        jl_text, segments = _remove_math(text)
        if jl_text != text and (
            any('"' in seg for seg in segments) or _FENCE_QUOTE.search(jl_text)
        ):
            return True
    return False


def _inert(text: str) -> str:
    if not _needs_work(text):
        return text
    level = 0
    # A destination that decodes to a dangerous URL right after "](" or "]:": turn
    # link syntax into text (whatever markdown-it thinks, another parser may link it).
    brackets = _fold_flag(text, _FOLD_LINK_FLAG)
    math = False
    doc = _Doc(text)
    source = doc.lines
    refine = doc.html_block  # escaping HTML blocks changes the block structure
    best: str | None = None
    for _ in range(6):
        # Escape the original lines with the structure of the latest text.
        new = _transform(doc, level, brackets, math, lines=source)
        same = new == doc.text
        new_doc = doc if same else _Doc(new)
        found = _problems(new, new_doc, fixpoint=same and level == 0)
        if not found:
            if not refine or same:
                return new
            # Safe; once more with the structure of this text, which may keep
            # code that the first guess escaped (e.g. after a former HTML block).
            best, refine = new, False
        elif best is not None:
            return best
        else:
            if ("html" in found or "info" in found) and same:
                level = min(level + 1, 2)
            if "link" in found:
                if brackets:
                    level = min(level + 1, 2)
                brackets = True
            if "math" in found:
                if math:
                    level = min(level + 1, 2)
                math = True
        doc = new_doc
    return best if best is not None else _as_code_block(text)


def inert_markdown(text: str) -> str:
    """Return ``text`` as Markdown in which nothing from the model is live markup.

    Raw HTML (tags, comments, declarations, processing instructions, CDATA, unsafe
    autolinks) outside code is escaped with ``&lt;`` so it shows literally; code
    spans and code blocks stay byte for byte; links and images with ``javascript:``,
    ``vbscript:``, ``data:`` (except raster images) or ``file:`` URLs are turned into
    text; Markdown without such content is returned unchanged.  Safe to call on
    every partial text of a stream; never raises.
    """
    try:
        if not isinstance(text, str):
            text = str(text)
        return _inert(text)
    except Exception:
        try:
            return _as_code_block(text if isinstance(text, str) else "")
        except Exception:
            return ""
