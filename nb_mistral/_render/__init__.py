"""One renderer for everything the model or the server says: Markdown to HTML in the kernel
(markdown-it-py), then an allowlist sanitiser (nh3) before anything leaves it; plain text with
dangerous URL schemes broken for ``text/plain``. One concept per module:

- ``_markdown``: the parser and its rules (links, images as links, code, math, nesting caps);
- ``_highlight``: Pygments by class, and our stylesheet for its classes;
- ``_math``: which math MathJax may typeset;
- ``_sanitize``: the allowlist;
- ``_plain``: plain text, and text that any output can encode;
- ``_incremental``: a growing text re-rendered at a cost that does not grow with it;
- ``_view``: a reply's view (answer, reasoning, tool calls, error, status line);
- ``_chat``: the chat widget's markup around sanitised turns.
"""

from ._incremental import IncrementalMarkdown, render_markdown
from ._markdown import code_of
from ._plain import defang, displayable, encodable, plain
from ._sanitize import sanitize
from ._view import ReplyRenderer, status_line, text_html, wrap

__all__ = [
    "IncrementalMarkdown",
    "ReplyRenderer",
    "code_of",
    "defang",
    "displayable",
    "encodable",
    "plain",
    "render_markdown",
    "sanitize",
    "status_line",
    "text_html",
    "wrap",
]
