"""What a reply looks like: the renderable, kept apart from the loop that refreshes it.

Everything from the model or the server goes through ``inert_markdown`` (or a literal code
fence) before it reaches a markup channel; the only HTML here is our own ``<details>``.
"""

from __future__ import annotations

import json
import re

from markdown_it import MarkdownIt

from ._inert import inert_markdown
from ._reply import Reply

_md = MarkdownIt("commonmark")
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>&~\"'])")
_BACKTICKS = re.compile(r"`+")


def escape_inline(text: str) -> str:
    """Untrusted text (a model name, an error message) as literal Markdown on one line."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def literal_block(text: str, info: str = "") -> str:
    """A fenced code block that no content can close early."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def close_open_fence(markdown: str) -> str:
    """While a reply streams, a code fence may still be open: close it so that what we append
    after the reply (the status line) is not swallowed into the code block."""
    if "```" not in markdown and "~~~" not in markdown:
        return markdown
    tokens = _md.parse(markdown)
    if not tokens:
        return markdown
    last = tokens[-1]
    lines = markdown.splitlines()
    if last.type == "fence" and last.map is not None and last.map[1] >= len(lines):
        closing = lines[-1].strip() if last.map[1] - last.map[0] > 1 else ""
        if not (
            closing.startswith(last.markup[0])
            and set(closing) == {last.markup[0]}
            and len(closing) >= len(last.markup)
        ):
            return markdown.rstrip("\n") + "\n" + last.markup
    return markdown


def status_line(reply: Reply, *, markdown: bool = True) -> str:
    """Model, tokens, time, tokens per second, and how it ended when that is worth saying.
    Markdown (italic, escaped) by default; plain text for ``-f text``."""
    escape = escape_inline if markdown else (lambda text: " ".join(text.split()))
    seconds = reply.elapsed
    parts = [escape(reply.model or "?"), f"{reply.tokens} tokens", f"{seconds:.1f} s"]
    if reply.first_token_at is not None and reply.tokens:
        rate_window = (reply.ended_at or reply.first_token_at) - reply.started
        if reply.done and rate_window > 0:
            parts.append(f"{reply.tokens / rate_window:.0f} tokens/s")
    if not reply.done:
        parts.append("streaming…")
    elif reply.stopped:
        parts.append("stopped")
    elif reply.error is not None:
        parts.append("error")
    elif reply.finish_reason not in (None, "stop"):
        parts.append(f"finish reason: {escape(reply.finish_reason or '')}")
    line = " · ".join(parts)
    return f"*{line}*" if markdown else line


def error_line(reply: Reply) -> str:
    if reply.error is None or reply.stopped:
        return ""
    return f"**⚠ {escape_inline(type(reply.error).__name__)}:** {escape_inline(str(reply.error))}"


def reply_markdown(reply: Reply, *, status: bool = True, thinking: bool = True) -> str:
    """The reply as inert Markdown: reasoning collapsed, answer, tool calls, status line.
    ``thinking=False`` leaves the reasoning out, for views that show it apart (the widget)."""
    blocks: list[str] = []
    thought = reply.thinking if thinking else ""
    if thought:
        opened = "" if reply.text or reply.done else " open"
        blocks.append(
            f"<details{opened}><summary>Thinking</summary>\n\n"
            f"{close_open_fence(inert_markdown(thought))}\n\n</details>"
        )
    text = reply.text
    if text:
        blocks.append(close_open_fence(inert_markdown(text)))
    elif not reply.done and not reply.thinking:
        blocks.append("*…*")
    for call in reply.tool_calls:
        arguments = call.function.arguments
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments, indent=2)
        blocks.append(
            f"Tool call `{escape_inline(call.function.name)}`:\n\n" + literal_block(shown, "json")
        )
    error = error_line(reply)
    if error:
        blocks.append(error)
    if status:
        blocks.append(status_line(reply))
    return "\n\n".join(blocks)


def reply_text(reply: Reply, *, status: bool = True) -> str:
    """The reply as plain text (``-f text``): inert by nature."""
    parts = [reply.text]
    if reply.error is not None and not reply.stopped:
        parts.append(f"[{type(reply.error).__name__}: {reply.error}]")
    if status:
        parts.append(status_line(reply, markdown=False))
    return "\n\n".join(p for p in parts if p)


def code_of(markdown: str) -> str | None:
    """The code of the first fenced block of a reply, for ``-f code``."""
    for token in _md.parse(markdown):
        if token.type == "fence" or token.type == "code_block":
            return token.content.rstrip("\n")
    return None
