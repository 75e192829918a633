"""``Settled``: a finished item held compactly until someone asks for its ``Reply``.

A Batch API job may return a million results; a ``Reply`` per item costs about 1 KB before its
text, a ``Settled`` about a tenth of that. ``Batch`` keeps these and makes the ``Reply`` of an
item on first access (``texts``, ``errors``, ``usage`` and ``to_pandas`` never need one).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._reply import Reply


class Settled(NamedTuple):
    model: str
    id: str | None
    content: Any  # the answer's content as it came: a string, or content chunks
    tool_calls: Any
    finish_reason: str | None
    usage: Any
    error: BaseException | None

    @classmethod
    def failed(cls, model: str, error: BaseException) -> Settled:
        return cls(model, None, None, None, None, None, error)

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return self.reply().text if self.content else ""

    @property
    def tokens(self) -> int:
        counted = getattr(self.usage, "completion_tokens", None)
        if counted is None and isinstance(self.usage, dict):
            counted = self.usage.get("completion_tokens")
        return counted if isinstance(counted, int) else int(bool(self.content))

    def reply(self) -> Reply:
        """The ``Reply`` this item would have been, streamed."""
        reply = Reply(self.model)
        if self.content or self.tool_calls or self.usage is not None or self.finish_reason:
            delta = {"content": self.content, "tool_calls": self.tool_calls}
            choice = {"index": 0, "delta": delta, "finish_reason": self.finish_reason}
            reply.add({"id": self.id, "usage": self.usage, "choices": [choice]})
        reply.finish(self.error)
        return reply
