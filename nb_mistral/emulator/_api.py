"""Mistral's API semantics on top of the HTTP server: routes, auth, validation, streaming.

This is where a request becomes the official wire format: which status and error body,
which chunks in which order, and how fast tokens are paced.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from . import _wire
from ._replies import Reply, build_reply
from ._server import RecordedRequest, Responder

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
_ROUTES = {CHAT_PATH: "POST", MODELS_PATH: "GET"}
_SSE_TYPE = "text/event-stream; charset=utf-8"


class MistralAPI:
    """The request handler; ``tokens_per_second`` and ``api_key`` may change at any time."""

    def __init__(self, tokens_per_second: float | None = None, api_key: str | None = None):
        self.tokens_per_second = tokens_per_second
        self.api_key = api_key

    async def __call__(self, request: RecordedRequest, out: Responder) -> None:
        allowed = _ROUTES.get(request.path)
        if allowed is None:
            await out.send_json(404, _wire.NOT_FOUND)
        elif request.method != allowed:
            await out.send_json(405, _wire.METHOD_NOT_ALLOWED, [("allow", allowed)])
        elif not self._authorized(request):
            await out.send_json(401, _wire.unauthorized(out.request_id))
        elif request.path == MODELS_PATH:
            await out.send_json(200, _wire.model_list())
        else:
            await self._chat(request, out)

    def _authorized(self, request: RecordedRequest) -> bool:
        if not self.api_key:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.api_key.encode()
        )

    async def _chat(self, request: RecordedRequest, out: Responder) -> None:
        body, problems = _validate(request.body)
        if problems:
            await out.send_json(422, _wire.validation_error(problems))
            return
        model = body["model"]
        if not _wire.is_known_model(model):
            await out.send_json(400, _wire.invalid_model(model))
            return
        reply = build_reply(body)
        if body.get("stream") is True:
            await self._stream(out, model, reply)
        else:
            obj = _wire.completion(_wire.new_id(), _wire.now(), model, reply)
            await out.send_json(200, obj)

    async def _stream(self, out: Responder, model: str, reply: Reply) -> None:
        """Stream the reply, one SSE event per HTTP chunk, paced on an absolute schedule."""
        cid, created = _wire.new_id(), _wire.now()

        def event(delta: dict[str, Any], **extra: Any) -> bytes:
            return _wire.sse(_wire.chunk(cid, created, model, delta, **extra))

        tps = self.tokens_per_second
        interval = 1.0 / tps if tps else 0.0
        if not await out.start_stream(200, _SSE_TYPE):
            return
        if not await out.send_chunk(event({"role": "assistant", "content": ""})):
            return
        start = asyncio.get_running_loop().time()
        usage = _wire.usage(reply)
        if reply.tool_call is not None:
            if interval and not await out.wait_until(start + interval):
                return
            delta = {"tool_calls": [_wire.tool_call_json(reply.tool_call)]}
            last = event(delta, finish_reason=reply.finish_reason, usage=usage)
            if await out.send_chunk(last):
                await out.end_stream(_wire.DONE)
            return
        deltas = [{"content": _wire.thinking_content(t)} for t in reply.thinking]
        deltas += [{"content": t} for t in reply.content]
        for i, delta in enumerate(deltas, 1):
            if interval and not await out.wait_until(start + i * interval):
                return
            if not await out.send_chunk(event(delta)):
                return
        last = event({"content": ""}, finish_reason=reply.finish_reason, usage=usage)
        if await out.send_chunk(last):
            await out.end_stream(_wire.DONE)


def _missing(field: str, body: Any) -> dict[str, Any]:
    return {"type": "missing", "loc": ["body", field], "msg": "Field required", "input": body}


def _validate(raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parse and check a chat request like the real API's pydantic layer does (the basics)."""
    try:
        body = json.loads(raw)
    except ValueError as e:
        pos = getattr(e, "pos", 0)
        reason = getattr(e, "msg", str(e))
        return {}, [
            {
                "type": "json_invalid",
                "loc": ["body", pos],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": reason},
            }
        ]
    if not isinstance(body, dict):
        return {}, [
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": body,
            }
        ]
    problems: list[dict[str, Any]] = []
    if "model" not in body:
        problems.append(_missing("model", body))
    elif not isinstance(body["model"], str):
        problems.append(_typed("string_type", "model", "Input should be a valid string", body))
    if "messages" not in body:
        problems.append(_missing("messages", body))
    elif not isinstance(body["messages"], list):
        problems.append(_typed("list_type", "messages", "Input should be a valid list", body))
    else:
        for i, message in enumerate(body["messages"]):
            if not isinstance(message, dict):
                problems.append(
                    {
                        "type": "model_attributes_type",
                        "loc": ["body", "messages", i],
                        "msg": "Input should be a valid dictionary or object to extract "
                        "fields from",
                        "input": message,
                    }
                )
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            problems.append(
                _typed("int_type", "max_tokens", "Input should be a valid integer", body)
            )
        elif max_tokens < 0:
            problems.append(
                {
                    "type": "greater_than_equal",
                    "loc": ["body", "max_tokens"],
                    "msg": "Input should be greater than or equal to 0",
                    "input": max_tokens,
                    "ctx": {"ge": 0},
                }
            )
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        problems.append(_typed("bool_type", "stream", "Input should be a valid boolean", body))
    return body, problems


def _typed(kind: str, field: str, msg: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", field], "msg": msg, "input": body[field]}
