"""Request bodies checked by pydantic, with errors in the real API's 422 shape.

The real API is a pydantic service: a wrong type or a missing field comes back as a list of
pydantic error details under ``message.detail``, with ``loc`` starting at ``"body"``. Strict
types give the same error kinds it reports (``string_type``, ``int_type``, ...).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

Problems = list[dict[str, Any]]

BatchEndpoint = Literal[
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/fim/completions",
    "/v1/moderations",
    "/v1/chat/moderations",
    "/v1/ocr",
    "/v1/classifications",
    "/v1/chat/classifications",
    "/v1/conversations",
    "/v1/audio/transcriptions",
]


class _Open(BaseModel):
    """Unknown fields pass (the API has many); a non-object is ``model_attributes_type``."""

    model_config = ConfigDict(extra="allow", from_attributes=True)


class _Message(_Open):
    pass


class ChatRequest(_Open):
    """The fields of a chat completion request the emulator acts on."""

    model: StrictStr
    messages: list[_Message]
    max_tokens: Annotated[StrictInt, Field(ge=0)] | None = None
    stream: StrictBool | None = None


class BatchRequestLine(_Open):
    """One inline request, or one line of a batch input file."""

    body: dict[str, Any]
    custom_id: StrictStr | None = None


class CreateBatchJob(_Open):
    """``POST /v1/batch/jobs``."""

    endpoint: BatchEndpoint
    input_files: list[StrictStr] | None = None
    requests: list[BatchRequestLine] | None = None
    model: StrictStr | None = None
    agent_id: StrictStr | None = None
    metadata: dict[str, StrictStr] | None = None
    timeout_hours: Annotated[StrictInt, Field(ge=1)] = 24


def parse_json(raw: bytes) -> tuple[Any, Problems]:
    """The decoded body, or the ``json_invalid`` detail the real API gives."""
    try:
        return json.loads(raw), []
    except ValueError as e:
        return None, [
            {
                "type": "json_invalid",
                "loc": ["body", getattr(e, "pos", 0)],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": getattr(e, "msg", str(e))},
            }
        ]


def check(model: type[BaseModel], body: Any) -> Problems:
    """Pydantic's error details for ``body``, located under ``"body"``; empty when valid."""
    try:
        model.model_validate(body)
    except ValidationError as e:
        return [_detail(error) for error in e.errors(include_url=False)]
    return []


def validate(model: type[BaseModel], raw: bytes) -> tuple[Any, Problems]:
    """Decode and check a JSON body: ``(decoded, problems)``."""
    body, problems = parse_json(raw)
    if problems:
        return None, problems
    return body, check(model, body)


def missing(field: str, body: Any) -> dict[str, Any]:
    """The detail for a missing form or body field."""
    return {"type": "missing", "loc": ["body", field], "msg": "Field required", "input": body}


def _detail(error: Any) -> dict[str, Any]:
    detail = {
        "type": error["type"],
        "loc": ["body", *error["loc"]],
        "msg": error["msg"],
        "input": error["input"],
    }
    if "ctx" in error:
        detail["ctx"] = {key: _plain(value) for key, value in error["ctx"].items()}
    return detail


def _plain(value: Any) -> Any:
    """Context values as JSON can carry them (pydantic may put exceptions there)."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
