"""``/v1/chat/completions`` and ``/v1/models``: Mistral's chat semantics on the HTTP layer.

This is where a request becomes the official wire format: which status and error body, which
chunks in which order, how fast tokens are paced, and when the limits answer 429.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import _wire
from ._limits import RETRY_AFTER_CONCURRENCY, Slot
from ._replies import CannedReply, build_reply
from ._server import EmulatorHandler, Responder
from ._validation import ChatRequest, validate

SSE_TYPE = "text/event-stream; charset=utf-8"


class ModelsHandler(EmulatorHandler):
    ALLOWED = ("GET",)

    def get(self) -> None:
        self.send_json(200, _wire.model_list())


class ChatHandler(EmulatorHandler):
    ALLOWED = ("POST",)

    async def post(self) -> None:
        state = self.state
        wait = state.rate.admit()
        if wait is not None:
            self._too_many(wait)
            return
        slot = state.gate.enter()
        if slot is None:
            self._too_many(RETRY_AFTER_CONCURRENCY)
            return
        try:
            await self._chat(slot)
        finally:
            slot.release()

    def _too_many(self, retry_after: int) -> None:
        self.state.recorder.rate_limited(retry_after)
        self.send_json(429, _wire.rate_limited(), [("Retry-After", str(retry_after))])

    async def _chat(self, slot: Slot) -> None:
        body, problems = validate(ChatRequest, self.request.body)
        if problems:
            self.send_json(422, _wire.validation_error(problems))
            return
        model = body["model"]
        if not _wire.is_known_model(model):
            self.send_json(400, _wire.invalid_model(model))
            return
        reply = build_reply(body)
        if body.get("stream") is True:
            responder = Responder(self)
            await _stream(responder, model, reply, self.state.tokens_per_second, slot)
            responder.abandoned()
        else:
            slot.release()
            self.send_json(200, _wire.completion(_wire.new_id(), _wire.now(), model, reply))


async def _stream(
    out: Responder, model: str, reply: CannedReply, tokens_per_second: float | None, slot: Slot
) -> None:
    """Stream the reply, one SSE event per HTTP chunk, paced on an absolute schedule.

    The concurrency slot is given back just before the last write, so a client that starts
    its next request on reading ``[DONE]`` never finds this one still counted.
    """
    cid, created = _wire.new_id(), _wire.now()

    def event(delta: dict[str, Any], **extra: Any) -> bytes:
        return _wire.sse(_wire.chunk(cid, created, model, delta, **extra))

    interval = 1.0 / tokens_per_second if tokens_per_second else 0.0
    if not await out.start(SSE_TYPE):
        return
    if not await out.send_chunk(event({"role": "assistant", "content": ""})):
        return
    start = asyncio.get_running_loop().time()
    usage = _wire.usage(reply)
    if reply.tool_call is not None:
        if interval and not await out.wait_until(start + interval):
            return
        calls = {"tool_calls": [_wire.tool_call_json(reply.tool_call)]}
        last = event(calls, finish_reason=reply.finish_reason, usage=usage)
    else:
        deltas: list[dict[str, Any]] = [
            {"content": _wire.thinking_content(t)} for t in reply.thinking
        ]
        deltas += [{"content": t} for t in reply.content]
        for i, delta in enumerate(deltas, 1):
            if interval and not await out.wait_until(start + i * interval):
                return
            if not await out.send_chunk(event(delta)):
                return
        last = event({"content": ""}, finish_reason=reply.finish_reason, usage=usage)
    if await out.send_chunk(last):
        slot.release()
        await out.end(_wire.DONE)
