"""The allowlist every piece of model or server HTML passes before it leaves the kernel.

nh3 (Ammonia, with html5ever: the HTML parser of a browser engine) re-parses what our Markdown
renderer wrote and keeps only what Markdown produces: no ``style``, no event handlers, no
``id``/``name`` (DOM clobbering), no forms, frames, SVG or MathML, links only to ``http``,
``https`` and ``mailto``, classes only Pygments', ``language-*`` and MathJax's process class on
spans holding one formula of allowed TeX (checked again after cleaning). So a mistake in the
renderer, or text we did not render at all, still cannot put script or a fetch on the page.
"""

from __future__ import annotations

import re

import nh3

from ._highlight import LANGUAGE_CLASSES, PYGMENTS_CLASSES
from ._markdown import LINK_REL
from ._math import PROCESS_CLASSES, check_math
from ._plain import displayable

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li",
        "pre", "code", "span", "em", "strong", "s", "del", "a", "table", "thead", "tbody",
        "tr", "th", "td",
    }
)  # fmt: skip
ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
_ALIGNMENTS = {"left", "center", "right"}
_ATTRIBUTE_VALUES = {
    "th": {"align": _ALIGNMENTS},
    "td": {"align": _ALIGNMENTS},
}
_START = re.compile(r"[0-9]{1,9}")
_ABSOLUTE = re.compile(r"(?:https?|mailto):", re.IGNORECASE)


def _attribute(tag: str, name: str, value: str) -> str | None:
    """Only absolute web and mail links (nh3 alone would let relative URLs through)."""
    if name == "href":
        return value if _ABSOLUTE.match(value) else None
    if name == "start":
        return value if _START.fullmatch(value) else None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes={"*": set(), "a": {"href"}, "ol": {"start"}},
    attribute_filter=_attribute,
    tag_attribute_values={tag: dict(values) for tag, values in _ATTRIBUTE_VALUES.items()},
    allowed_classes={
        "code": set(LANGUAGE_CLASSES),
        "span": set(PYGMENTS_CLASSES) | set(PROCESS_CLASSES.split()),
    },
    set_tag_attribute_values={"a": {"target": "_blank"}},
    url_schemes=set(ALLOWED_SCHEMES),
    link_rel=LINK_REL,
    strip_comments=True,
)


def sanitize(html: str) -> str:
    """``html`` with everything outside the allowlist removed (and lone surrogates, which
    no output can encode, as U+FFFD)."""
    return check_math(_CLEANER.clean(displayable(html)))
