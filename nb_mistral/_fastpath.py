"""The pydantic-core fast path of ``EventStream``, and the finish-reason side channel.

Fast path: all the events of one network chunk are validated in one pydantic-core call, from
one JSON text built around their raw bytes (``OPEN`` + data + ``BETWEEN`` + ... + ``CLOSE``).
The validator is a copy of the event model's core schema in which ``data`` is read from
``KEY``, an alias no server can know, and every other key is forbidden: a data that is not one
whole JSON value makes the batch fail, and the stream falls back to one event at a time. When
a type does not lend itself to this, the reason is logged at DEBUG and the general path serves.

Side channel: an event type that says ``reports_finish = True`` is validated with a
``FinishSeen`` context, into which its models report a finish reason as they validate it, so a
stream learns that the reply is complete without looking at every event again.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from pydantic import BaseModel, ValidationError, ValidationInfo
from pydantic_core import SchemaValidator, core_schema

logger = logging.getLogger("nb_mistral.fastpath")

# The key under which the batch carries each event's data. Unknowable to the server, so no data
# can forge a second one: a value that is not one whole JSON value makes the batch fail.
KEY = "_" + secrets.token_hex(12)
OPEN = b'[{"' + KEY.encode() + b'":'
BETWEEN = b'\n},{"' + KEY.encode() + b'":'  # the LF first: no JSON string can run across it
CLOSE = b"\n}]"

_batch_validators: dict[type, SchemaValidator | None] = {}


class FinishSeen:
    """A validation context that models tell when a finish reason goes by."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


def report_finish(reason: str, info: ValidationInfo) -> str:
    """An ``AfterValidator`` for a non-null finish reason: tells the ``FinishSeen`` context."""
    if type(info.context) is FinishSeen:
        info.context.seen = True
    return reason


def finish_context(event_type: type) -> FinishSeen | None:
    """A fresh context if ``event_type`` reports finish reasons itself (its own claim only: a
    subclass may validate its data with other models), else None."""
    reports = isinstance(event_type, type) and vars(event_type).get("reports_finish", False)
    return FinishSeen() if reports else None


def batch_validator(event_type: type) -> SchemaValidator | None:
    """A validator of ``list[event_type]`` reading each event's ``data`` from ``KEY`` (cached);
    None when the type does not lend itself to it."""
    if event_type not in _batch_validators:
        validator = None
        reason = _unsuitable(event_type)
        if reason is None:
            try:
                validator, reason = _build(event_type)
            except Exception as exc:  # pydantic-core's schema is not a public format
                reason = f"the schema could not be adapted ({type(exc).__name__}: {exc})"
        if validator is None:
            name = getattr(event_type, "__qualname__", repr(event_type))
            logger.debug("no batch validation for %s: %s", name, reason)
        _batch_validators[event_type] = validator
    return _batch_validators[event_type]


def _unsuitable(event_type: type) -> str | None:
    if not (isinstance(event_type, type) and issubclass(event_type, BaseModel)):
        return "not a pydantic model"
    field = event_type.model_fields.get("data")
    if field is None:
        return "no `data` field"
    if field.alias or field.validation_alias:
        return "`data` has an alias"
    if event_type.model_config.get("extra") == "allow":
        return "the model allows extra fields"
    return None


def _build(event_type: type[BaseModel]) -> tuple[SchemaValidator | None, str]:
    schema: dict[str, Any] = dict(event_type.__pydantic_core_schema__)
    outer = schema if schema["type"] == "definitions" else None
    model = dict(outer["schema"] if outer is not None else schema)
    if model["type"] != "model" or model["cls"] is not event_type:
        return None, f"an unexpected core schema ({model['type']})"
    model.pop("ref", None)
    model["config"] = {
        **model.get("config", {}),
        "extra_fields_behavior": "forbid",
        "validate_by_alias": True,
        "validate_by_name": False,
    }
    fields_schema = model["schema"] = dict(model["schema"])
    fields_schema["extra_behavior"] = "forbid"
    fields = fields_schema["fields"] = dict(fields_schema["fields"])
    fields["data"] = {**fields["data"], "validation_alias": KEY}
    listed: dict[str, Any] = dict(core_schema.list_schema(model))
    if outer is not None:
        listed = {**outer, "schema": listed}
    validator = _without_own_validator(event_type, listed)
    # Make sure the changes took: a missing ``data`` must be reported under KEY.
    try:
        validator.validate_json(b"[{}]")
    except ValidationError as exc:
        if exc.errors()[0]["loc"] == (0, KEY):
            return validator, ""
    return None, "the changed schema did not take (pydantic-core reused the model's own)"


def _without_own_validator(event_type: type[BaseModel], schema: dict[str, Any]) -> SchemaValidator:
    """pydantic-core builds a complete model's schema as that model's own validator, which
    would drop our changes; so the class is marked incomplete for the moment of the build."""
    complete = event_type.__dict__.get("__pydantic_complete__", False)
    type.__setattr__(event_type, "__pydantic_complete__", False)
    try:
        return SchemaValidator(schema)
    finally:
        type.__setattr__(event_type, "__pydantic_complete__", complete)
