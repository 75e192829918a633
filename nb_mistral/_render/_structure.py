"""The live view of structured replies and tool rounds: a reply asked for as JSON shows as a
highlighted JSON block while it grows, then the object it was parsed into (or why not); each
tool call shows the result that went back to the model.

Everything passes through the same escaping and sanitiser as the rest of the reply: the JSON is
the model's text, the parsed object's repr is made from it, and a tool's result may quote
anything.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ._highlight import highlight_code
from ._plain import displayable
from ._sanitize import sanitize

if TYPE_CHECKING:
    from .._reply import Reply

RESULT_CHARS = 300  # of a tool's result, shown in the view (the whole is in reply.messages)
PARSED_CHARS = 2_000


def code_block(code: str, language: str) -> str:
    """A highlighted, sanitised code block of untrusted text."""
    inner = highlight_code(displayable(code), language)
    return sanitize(f'<pre><code class="language-{language}">{inner}</code></pre>')


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parsed_html(reply: Reply) -> str:
    """Once done: the parsed object, or the reason there is none."""
    if not reply.done or not reply.structured:
        return ""
    if reply.parsed is not None:
        name = html.escape(type(reply.parsed).__name__)
        shown = _short(repr(reply.parsed), PARSED_CHARS)
        return f"<p>Parsed into <code>{name}</code> (<code>.parsed</code>):</p>" + code_block(
            shown, "python"
        )
    if reply.parse_error:
        return (
            '<p class="nb-mistral-error">Not parsed (<code>.parse_error</code>):</p>'
            + code_block(reply.parse_error, "text")
        )
    return ""


def result_html(reply: Reply, call_id: str | None) -> str:
    """The result sent back for one tool call, shortened, or nothing yet."""
    result = reply.tool_result(call_id)
    if result is None:
        return ""
    return "<p>Result:</p>" + code_block(_short(result, RESULT_CHARS), "text")
