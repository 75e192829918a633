"""What a reply looks like: answer, reasoning, tool calls, error and status line, as sanitised
HTML in a container of ours, and as plain text.

Our own markup (the container, the collapsed reasoning, labels, the status line, a stylesheet
for tables and highlighting) goes *around* content that has already passed the sanitiser; no
text from the model or the server is ever placed outside it. The container tells MathJax to
leave the reply alone (``mathjax_ignore`` for JupyterLab 4's MathJax 3, ``tex2jax_ignore``
for MathJax 2 front ends): TeX from a model could otherwise make links and styles. Only math
made of allowed TeX is handed back to it (see ``_math``).
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

from ._highlight import highlight_code, highlight_css
from ._incremental import IncrementalMarkdown
from ._plain import GrowingPlain, displayable, plain
from ._sanitize import sanitize
from ._structure import code_block, parsed_html, result_html

if TYPE_CHECKING:
    from .._reply import Reply

DISPLAY_BUDGET = 200_000  # characters of a reply shown at most; the rest stays in the variable
CONTAINER_CLASS = "nb-mistral-reply"
_SCOPE = f".{CONTAINER_CLASS}.{CONTAINER_CLASS}"  # outweighs JupyterLab's right-aligned cells
STYLE = (
    "<style>"
    f"{_SCOPE} table th,{_SCOPE} table td{{text-align:left}}"
    f"{_SCOPE} table [align=center]{{text-align:center}}"
    f"{_SCOPE} table [align=right]{{text-align:right}}"
    f"{_SCOPE} .nb-mistral-status{{font-size:var(--jp-ui-font-size0,11px);"
    "color:var(--jp-ui-font-color2,#757575)}"
    f"{_SCOPE} .nb-mistral-error{{color:var(--jp-error-color1,#d32f2f)}}"
    # code blocks in a box, as JupyterLab's Markdown cells show them
    f"{_SCOPE} pre{{background:var(--jp-layout-color2,#f5f5f5);padding:6px 8px;"
    "border-radius:2px;overflow-x:auto}"
    f"{highlight_css(f'.{CONTAINER_CLASS}')}"
    "</style>"
)


def text_html(text: str) -> str:
    """Untrusted text shown literally, on the sanitised path like everything else."""
    return sanitize(html.escape(displayable(text), quote=False))


def wrap(inner: str) -> str:
    """Our container (and stylesheet) around sanitised HTML."""
    return f'<div class="{CONTAINER_CLASS} mathjax_ignore tex2jax_ignore">{STYLE}{inner}</div>'


def within_budget(text: str) -> tuple[str, int]:
    """The head of ``text`` that is shown (cut at a line end when one is near), and how many
    characters are left out."""
    if len(text) <= DISPLAY_BUDGET:
        return text, 0
    cut = text.rfind("\n", DISPLAY_BUDGET // 2, DISPLAY_BUDGET)
    cut = cut + 1 if cut >= 0 else DISPLAY_BUDGET
    return text[:cut], len(text) - cut


def _omitted_html(omitted: int) -> str:
    return (
        f"<p><em>… {omitted:,} more characters are not shown here; the full text is in "
        "the reply's <code>.text</code>.</em></p>"
    )


# below this the time is not worth a rate (it shows as "0.0 s"; the rate would be noise)
MIN_RATE_WINDOW = 0.1


def status_parts(reply: Reply) -> list[str]:
    """Model, tokens, time, tokens per second, and how it ended when that is worth saying."""
    parts = [reply.model or "?", f"{reply.tokens} tokens", f"{reply.elapsed:.1f} s"]
    if reply.first_token_at is not None and reply.tokens:
        rate_window = (reply.ended_at or reply.first_token_at) - reply.started
        if reply.done and rate_window >= MIN_RATE_WINDOW:
            parts.append(f"{reply.tokens / rate_window:.0f} tokens/s")
    if not reply.done:
        parts.append("streaming…")
    elif reply.stopped:
        parts.append("stopped")
    elif reply.error is not None:
        parts.append("error")
    elif reply.finish_reason not in (None, "stop"):
        parts.append(f"finish reason: {reply.finish_reason}")
    if reply.replayed:
        parts.append("replayed")
    return parts


def status_line(reply: Reply) -> str:
    """The status line as plain text (``-f text``)."""
    return plain(" · ".join(" ".join(part.split()) for part in status_parts(reply)))


def error_message(reply: Reply) -> str:
    """``Type: message`` of what ended the reply, or nothing (no error, or a stop)."""
    if reply.error is None or reply.stopped:
        return ""
    return f"{type(reply.error).__name__}: {reply.error}"


class ReplyRenderer:
    """Renders one reply, incrementally while it streams and exactly once it is done.

    ``show_error``: whether the view itself states the error's message. In the foreground
    the cell's one-line error already does, so the status line just says "error"; a
    background reply or a chat message has no cell error and shows it here, once.
    ``typeset_math``: whether allowed math goes to MathJax (a cell's HTML output is typeset;
    a widget's is not, so there math stays code)."""

    def __init__(self, reply: Reply, *, show_error: bool = True, typeset_math: bool = True) -> None:
        self.reply = reply
        self.show_error = show_error
        self._answer = IncrementalMarkdown(typeset_math=typeset_math)
        self._thinking = IncrementalMarkdown(typeset_math=typeset_math)
        self._plain = GrowingPlain()

    def _markdown(self, renderer: IncrementalMarkdown, raw: str) -> str:
        shown, omitted = within_budget(displayable(raw))
        body = renderer.render(shown, final=self.reply.done)
        return body + _omitted_html(omitted) if omitted else body

    def answer_html(self) -> str:
        reply = self.reply
        if reply.raw_text and reply.structured:  # JSON asked for: shown as JSON, then parsed
            shown, omitted = within_budget(reply.raw_text)
            body = code_block(shown, "json") + parsed_html(reply)
            return body + _omitted_html(omitted) if omitted else body
        if reply.raw_text:
            return self._markdown(self._answer, reply.raw_text)
        if not reply.done and not reply.raw_thinking:
            return "<p><em>…</em></p>"
        return ""

    def thinking_html(self) -> str:
        return self._markdown(self._thinking, self.reply.raw_thinking)

    def tool_calls_html(self) -> str:
        blocks = []
        for call in self.reply.tool_calls:
            arguments = call.function.arguments
            shown = arguments if isinstance(arguments, str) else json.dumps(arguments, indent=2)
            code = highlight_code(displayable(shown), "json")
            blocks.append(
                f"<p>Tool call <code>{text_html(call.function.name)}</code>:</p>"
                + sanitize(f'<pre><code class="language-json">{code}</code></pre>')
                + result_html(self.reply, call.id)
            )
        return "".join(blocks)

    def error_html(self) -> str:
        message = error_message(self.reply) if self.show_error else ""
        return f'<p class="nb-mistral-error">⚠ {text_html(message)}</p>' if message else ""

    def status_html(self) -> str:
        """The status line, inline (the widget puts it in a footer of its own)."""
        return "<em>" + " · ".join(text_html(part) for part in status_parts(self.reply)) + "</em>"

    def body_html(self, *, thinking: bool = True, status: bool = True) -> str:
        """Everything inside the container; the widget leaves out what it shows apart."""
        pieces = []
        if thinking and self.reply.raw_thinking:
            opened = "" if self.reply.raw_text or self.reply.done else " open"
            pieces.append(
                f'<details class="nb-mistral-thinking"{opened}><summary>Thinking</summary>'
                f"{self.thinking_html()}</details>"
            )
        pieces += [self.answer_html(), self.tool_calls_html(), self.error_html()]
        if status:
            pieces.append(f'<p class="nb-mistral-status">{self.status_html()}</p>')
        return "\n".join(piece for piece in pieces if piece)

    def html(self) -> str:
        """The whole view, for ``text/html``."""
        return wrap(self.body_html())

    def text(self, *, status: bool = True) -> str:
        """The reply as plain text (``text/plain``, ``-f text``): the raw Markdown, defanged."""
        shown, omitted = within_budget(self.reply.raw_text)
        parts = [self._plain(shown)]
        if omitted:
            parts.append(f"[… {omitted:,} more characters: the full text is in the reply's .text]")
        message = error_message(self.reply) if self.show_error else ""
        if message:
            parts.append(f"[{plain(message)}]")
        if status:
            parts.append(status_line(self.reply))
        return "\n\n".join(part for part in parts if part)
