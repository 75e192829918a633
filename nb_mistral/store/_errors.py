"""``CacheMiss``: what ``only`` mode raises instead of sending a request the store cannot answer.

It lives here until the coordinator moves it beside the other ``MistralError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import MistralError

_PROMPT_WORDS = 8


class CacheMiss(MistralError):
    """``only`` mode found no complete recorded reply for this request (nothing was sent)."""

    def __init__(self, model: str, prompt: str) -> None:
        self.model = model
        self.prompt = prompt
        words = prompt.split()
        shown = " ".join(words[:_PROMPT_WORDS]) + (" …" if len(words) > _PROMPT_WORDS else "")
        super().__init__(
            f"no recorded reply for model {model!r} and prompt {shown!r} "
            "(cache mode 'only' never sends a request: record it once with cache 'replay', "
            "or import an export with python -m nb_mistral.store import FILE)"
        )

    @classmethod
    def for_request(cls, body: Mapping[str, Any]) -> CacheMiss:
        """Name the model and the last user message of a chat request body."""
        from ._record import prompt_of

        return cls(str(body.get("model", "")), prompt_of(body))
