"""Code highlighting with Pygments, by class only: the sanitiser allows no ``style``, so colours
come from a stylesheet of ours that maps Pygments' classes to JupyterLab's editor colours."""

from __future__ import annotations

import html
import re
from functools import lru_cache

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_all_lexers, get_lexer_by_name
from pygments.token import STANDARD_TYPES, Token, _TokenType
from pygments.util import ClassNotFound

_LANGUAGE_NAME = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
_FORMATTER = HtmlFormatter(nowrap=True)
MATH_LANGUAGE = "math"

# every class Pygments' HTML formatter can write
PYGMENTS_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name)
# a ``language-*`` class for every language Pygments knows (and for math, shown as code)
LANGUAGE_CLASSES = frozenset(
    f"language-{alias}"
    for _name, aliases, _files, _mimes in get_all_lexers()
    for alias in aliases
    if _LANGUAGE_NAME.fullmatch(alias)
) | {f"language-{MATH_LANGUAGE}"}

# JupyterLab's editor colours (with light-theme fallbacks for front ends without them)
_COLOURS: dict[_TokenType, str] = {
    Token.Keyword: "var(--jp-mirror-editor-keyword-color, #008000)",
    Token.Operator.Word: "var(--jp-mirror-editor-keyword-color, #008000)",
    Token.Name.Builtin: "var(--jp-mirror-editor-builtin-color, #008000)",
    Token.Name.Function: "var(--jp-mirror-editor-def-color, #0000ff)",
    Token.Name.Class: "var(--jp-mirror-editor-def-color, #0000ff)",
    Token.Name.Tag: "var(--jp-mirror-editor-tag-color, #008000)",
    Token.Name.Attribute: "var(--jp-mirror-editor-attribute-color, #7d9029)",
    Token.Name.Decorator: "var(--jp-mirror-editor-meta-color, #aa22ff)",
    Token.Comment: "var(--jp-mirror-editor-comment-color, #408080)",
    Token.Comment.Preproc: "var(--jp-mirror-editor-meta-color, #aa22ff)",
    Token.String: "var(--jp-mirror-editor-string-color, #ba2121)",
    Token.Number: "var(--jp-mirror-editor-number-color, #080)",
    Token.Operator: "var(--jp-mirror-editor-operator-color, #aa22ff)",
    Token.Punctuation: "var(--jp-mirror-editor-punctuation-color, #05a)",
    Token.Error: "var(--jp-mirror-editor-error-color, #f00)",
    Token.Generic.Deleted: "var(--jp-mirror-editor-error-color, #f00)",
    Token.Generic.Inserted: "var(--jp-mirror-editor-string-color, #080)",
    Token.Generic.Heading: "var(--jp-mirror-editor-header-color, #00f)",
}


def language_class(info: str) -> str | None:
    """The ``language-*`` class for a fence's info string, if Pygments knows the language."""
    words = info.split()
    if not words:
        return None
    name = f"language-{words[0].lower()}"
    return name if name in LANGUAGE_CLASSES else None


@lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def highlight_code(code: str, language: str | None) -> str:
    """HTML for the inside of ``<code>``: Pygments' class spans, or the escaped code."""
    lexer = _lexer(language) if language and language != MATH_LANGUAGE else None
    if lexer is None:
        return html.escape(code, quote=False)
    return highlight(code, lexer, _FORMATTER)


def _colour(token_type: _TokenType | None) -> str | None:
    while token_type is not None and token_type is not Token:
        if token_type in _COLOURS:
            return _COLOURS[token_type]
        token_type = token_type.parent
    return None


def highlight_css(scope: str) -> str:
    """Our stylesheet for Pygments' classes under ``scope`` (a selector of our own markup),
    one rule per colour."""
    classes: dict[str, list[str]] = {}
    for token_type, name in sorted(STANDARD_TYPES.items(), key=lambda item: item[1]):
        colour = _colour(token_type) if name else None
        if colour is not None:
            classes.setdefault(colour, []).append(f"{scope} .{name}")
    return "".join(
        f"{','.join(selectors)}{{color:{colour}}}" for colour, selectors in classes.items()
    )
