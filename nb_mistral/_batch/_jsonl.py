"""The Batch API's files: requests written one line at a time, results read one line at a time.

A request line is ``{"custom_id": "<position>", "body": {...}}`` (the chat body without
``model``, which the job names, and without ``stream``); a result line carries the same
``custom_id`` and either ``response.body`` (a chat completion) or an ``error``. Positions as
ids let a re-attached job put results back in input order without the input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Hashable, Iterable, Mapping
from typing import IO, Any, NamedTuple

from .._errors import APIError, MistralError
from .._request import chat_body
from ._items import Items, Prompt, messages_for
from ._result import Batch, ItemState
from ._settled import Settled


class TokenUsage(NamedTuple):
    """A result line's ``usage``, kept small: a batch may hold a million of them (the same
    attribute names as a streamed reply's ``UsageInfo``)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def request_line(
    position: int,
    prompt: Prompt,
    item: Any,
    system: str | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    body = chat_body("", messages_for(prompt, item, system), False, options)
    del body["model"], body["stream"]
    return {"custom_id": str(position), "body": body}


def write_requests(
    items: Items,
    prompt: Prompt,
    system: str | None,
    options: Mapping[str, Any],
    out: IO[bytes],
) -> tuple[int, list[Hashable] | None]:
    """Write every item's request line to ``out``; returns how many, and the items' pandas
    labels in order (None when the labels are the positions)."""
    labels: list[Hashable] | None = [] if items.pandas_index is not None else None
    count = 0
    for position, (label, item) in enumerate(items.labelled()):
        line = request_line(position, prompt, item, system, options)
        out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        if labels is not None:
            labels.append(label)
        count += 1
    return count, labels


def apply_results(batch: Batch, lines: Iterable[bytes | str | Mapping[str, Any]]) -> int:
    """Put each result line into the item of its ``custom_id``; returns how many matched.
    Lines that do not parse or name no item of this batch are skipped."""
    matched = 0
    for raw in lines:
        record = raw if isinstance(raw, Mapping) else _parse(raw)
        index = _position(record, len(batch)) if record is not None else None
        if record is None or index is None or batch._is_settled(index):
            continue
        settled, ok = _settled(batch.model, record)
        batch._settle(index, settled, ItemState.DONE if ok else ItemState.FAILED)
        matched += 1
    return matched


def _settled(model: str, record: Mapping[str, Any]) -> tuple[Settled, bool]:
    """One result line as a compact result, and whether the request succeeded."""
    response = record.get("response") or {}
    status = response.get("status_code") if isinstance(response, Mapping) else None
    body = response.get("body") if isinstance(response, Mapping) else None
    error = record.get("error")
    if error or not isinstance(status, int) or not 200 <= status < 300:
        code = status if isinstance(status, int) else 0
        text = json.dumps(body if body is not None else error)
        return Settled.failed(model, APIError.from_body(code, text)), False
    completion: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    choice: Mapping[str, Any] = {}
    for candidate in completion.get("choices") or ():
        if isinstance(candidate, Mapping) and candidate.get("index", 0) in (0, None):
            choice = candidate
            break
    message = choice.get("message")
    message = message if isinstance(message, Mapping) else {}
    identifier = completion.get("id")
    settled = Settled(
        model,
        identifier if isinstance(identifier, str) else None,
        message.get("content"),
        message.get("tool_calls") or None,
        _interned(choice.get("finish_reason")),
        _compact_usage(completion.get("usage")),
        None,
    )
    return settled, True


def _compact_usage(usage: Any) -> Any:
    """The usual three counts as a ``TokenUsage``; anything else as it came."""
    if isinstance(usage, Mapping) and set(usage) == set(TokenUsage._fields):
        counts = [usage[name] for name in TokenUsage._fields]
        if all(isinstance(count, int) for count in counts):
            return TokenUsage(*counts)
    return usage


def _interned(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


def finish_missing(batch: Batch, reason: str, state: ItemState = ItemState.FAILED) -> None:
    """Every item that got no result line ends with ``reason`` as its error."""
    for index in range(len(batch)):
        if not batch._is_settled(index):
            batch._settle(index, Settled.failed(batch.model, MistralError(reason)), state)


def _parse(raw: bytes | str) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _position(record: Mapping[str, Any], size: int) -> int | None:
    custom_id = record.get("custom_id")
    try:
        position = int(str(custom_id))
    except ValueError:
        return None
    return position if 0 <= position < size else None
