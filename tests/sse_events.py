"""The event type the SSE tests stream into, and what a dispatched event should become."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from nb_mistral import ServerSentEvent


class Ev(BaseModel):
    """The simplest event type: every SSE field, data as it was decoded."""

    data: Any
    event: str | None = None
    id: str | None = None
    retry: int | None = None


def typed(sse: ServerSentEvent) -> Ev:
    """What EventStream should make of a dispatched event: JSON-decoded data, absent = None."""
    try:
        data: Any = json.loads(sse.data)
    except ValueError:
        data = sse.data
    return Ev(data=data, event=sse.event or None, id=sse.id or None, retry=sse.retry)
