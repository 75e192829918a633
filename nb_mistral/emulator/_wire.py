"""JSON objects of Mistral's chat API, shaped exactly like the official server's.

Kept apart from the HTTP server and the reply text so that the wire format lives in one
place: chunks, completions, model cards and error bodies.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ._replies import CannedReply, CannedToolCall

_CHAT = {"function_calling": True}
_VISION = {"function_calling": True, "vision": True}
_CODE = {"function_calling": True, "completion_fim": True}
_REASONING = {"function_calling": True, "reasoning": True}

MODELS: tuple[tuple[str, int, dict[str, bool]], ...] = (
    ("mistral-large-latest", 131072, _CHAT),
    ("mistral-medium-latest", 131072, _VISION),
    ("mistral-small-latest", 131072, _VISION),
    ("codestral-latest", 262144, _CODE),
    ("open-mistral-nemo", 131072, _CHAT),
    ("magistral-medium-latest", 40960, _REASONING),
    ("magistral-small-latest", 40960, _REASONING),
    ("ministral-8b-latest", 131072, _CHAT),
    ("devstral-small-latest", 131072, _CHAT),
    ("pixtral-large-latest", 131072, _VISION),
)
MODEL_IDS = frozenset(m[0] for m in MODELS)


def is_known_model(model: str) -> bool:
    """Only what ``/v1/models`` lists, as the real API: anything else is ``Invalid model``."""
    return model in MODEL_IDS


def dumps(obj: Any) -> bytes:
    """Compact JSON, as the real API sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse(obj: Any) -> bytes:
    """One Server-Sent Event; ``obj`` is a JSON object or a raw string such as ``[DONE]``."""
    data = obj.encode("utf-8") if isinstance(obj, str) else dumps(obj)
    return b"data: " + data + b"\n\n"


DONE = sse("[DONE]")


def new_id() -> str:
    """A completion / request id: 32 hex digits, like the real ones."""
    return uuid.uuid4().hex


def now() -> int:
    return int(time.time())


def usage(reply: CannedReply) -> dict[str, int]:
    p, c = reply.prompt_tokens, reply.completion_tokens
    return {"prompt_tokens": p, "total_tokens": p + c, "completion_tokens": c}


def tool_call_json(call: CannedToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
        "index": 0,
    }


def thinking_content(text: str) -> list[dict[str, Any]]:
    """Reasoning models' content chunk: ``[{"type": "thinking", "thinking": [text chunk]}]``."""
    return [{"type": "thinking", "thinking": [{"type": "text", "text": text}]}]


def chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; the last one carries ``finish_reason`` and ``usage``."""
    obj: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        obj["usage"] = usage
    return obj


def completion(cid: str, created: int, model: str, reply: CannedReply) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object for the same reply."""
    content: str | list[dict[str, Any]] = reply.text
    if reply.thinking:
        content = [*thinking_content(reply.thinking_text), {"type": "text", "text": reply.text}]
    tool_calls = [tool_call_json(reply.tool_call)] if reply.tool_call else None
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "tool_calls": tool_calls},
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage(reply),
    }


def model_card(
    model_id: str, max_context: int, caps: dict[str, bool], created: int
) -> dict[str, Any]:
    capabilities = {
        "completion_chat": True,
        "completion_fim": False,
        "function_calling": False,
        "reasoning": False,
        "fine_tuning": False,
        "vision": False,
        "classification": False,
    }
    capabilities.update(caps)
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "mistralai",
        "capabilities": capabilities,
        "name": model_id,
        "description": f"Emulated {model_id}: nb_mistral's offline emulator, not a model.",
        "max_context_length": max_context,
        "aliases": [],
        "deprecation": None,
        "default_model_temperature": 0.3,
        "type": "base",
    }


def model_list() -> dict[str, Any]:
    created = now()
    return {"object": "list", "data": [model_card(*m, created) for m in MODELS]}


def unauthorized(request_id: str) -> dict[str, Any]:
    return {"message": "Unauthorized", "request_id": request_id}


def validation_error(detail: list[dict[str, Any]]) -> dict[str, Any]:
    """422 body: pydantic-style details wrapped the way the real API wraps them."""
    return {
        "object": "error",
        "message": {"detail": detail},
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def invalid_model(model: str) -> dict[str, Any]:
    return {
        "object": "error",
        "message": f"Invalid model: {model}",
        "type": "invalid_model",
        "param": None,
        "code": "1500",
    }


def rate_limited() -> dict[str, Any]:
    """429 body of the real API (rate or concurrency), sent with ``Retry-After``."""
    return {
        "object": "error",
        "message": "Rate limit exceeded",
        "type": "rate_limited",
        "param": None,
        "code": "1300",
    }


def api_error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """A 4xx body in the API's error shape (``object``/``message``/``type``)."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": None}


NOT_FOUND: dict[str, Any] = {"detail": "Not Found"}
METHOD_NOT_ALLOWED: dict[str, Any] = {"detail": "Method Not Allowed"}
