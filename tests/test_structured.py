"""Structured output against the emulator on loopback: the request's ``response_format``, the
emulator's schema-valid JSON, ``Reply.parsed`` / ``.parse_error`` and ``chat.parse``."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from enum import Enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

import nb_mistral
from nb_mistral import Mistral
from nb_mistral._structured import response_format_of, structured_options
from nb_mistral.emulator import Emulator
from nb_mistral.emulator._schema import example

MODEL = "mistral-small-latest"


class Priority(str, Enum):
    low = "low"
    high = "high"


class Address(BaseModel):
    city: str
    postcode: str = Field(min_length=5, max_length=5)


class LineItem(BaseModel):
    sku: str
    quantity: int = Field(ge=2, le=40)
    price: float = Field(gt=0)


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Order(BaseModel):
    customer: str
    priority: Priority
    address: Address
    items: list[LineItem] = Field(min_length=1)
    tags: list[str]
    note: str | None = None
    tree: Node


def chat_bodies(emulator: Emulator) -> list[Any]:
    return [r.json for r in emulator.requests if r.path.endswith("/chat/completions")]


def test_request_carries_a_strict_json_schema_for_a_model(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    client.chat.complete(
        model=MODEL, messages=[{"role": "user", "content": "x"}], response_format=Order
    )
    (body,) = chat_bodies(emulator)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Order" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["LineItem"]["additionalProperties"] is False
    assert set(schema["required"]) >= {"customer", "priority", "address", "items"}


def test_a_schema_dict_is_wrapped_and_a_full_format_passes() -> None:
    schema = {"title": "Point", "type": "object", "properties": {"x": {"type": "number"}}}
    fmt = response_format_of(schema)
    assert fmt["json_schema"]["name"] == "Point"
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's dict is not changed
    assert response_format_of({"type": "json_object"}) == {"type": "json_object"}
    wire, structure = structured_options({"response_format": Order, "temperature": 0})
    assert wire["response_format"]["type"] == "json_schema" and wire["temperature"] == 0
    assert structure is not None and structure.model is Order
    with pytest.raises(TypeError, match="Pydantic model class or a JSON schema"):
        response_format_of(42)


def test_nested_model_round_trips_into_parsed(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream(
        "Extract the order of Alice Martin from Lyon",
        model=MODEL,
        client=client,
        response_format=Order,
    )
    assert reply.parse_error is None, reply.parse_error
    order = reply.parsed
    assert isinstance(order, Order)
    assert order.priority is Priority.low
    assert len(order.address.postcode) == 5
    assert order.items and all(2 <= item.quantity <= 40 for item in order.items)
    assert order.tree.children  # nested recursive model filled
    assert order == Order.model_validate_json(reply.text)  # parsed from the streamed text
    # streamed: the JSON arrived in many deltas, the same as the non-streaming content
    assert reply.deltas > 10
    (body,) = chat_bodies(emulator)
    assert body["stream"] is True and body["response_format"]["json_schema"]["name"] == "Order"


def test_schema_dict_parses_to_plain_json(emulator: Emulator) -> None:
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 7, "maximum": 9},
            "labels": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 3},
        },
        "required": ["score", "labels"],
    }
    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream("Rate it", model=MODEL, client=client, response_format=schema)
    assert reply.parsed == {"score": 7, "labels": ["a", "a", "a"]}


def test_invalid_json_gives_parse_error_and_keeps_the_text(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream(
        "Extract it", model=MODEL, client=client, response_format=Order, max_tokens=4
    )
    assert reply.finish_reason == "length"
    assert reply.parsed is None
    assert reply.parse_error and "validation error" in reply.parse_error
    assert reply.text.startswith("{") and len(reply.text) > 3  # the text stays


def test_astream_parses_too(emulator: Emulator) -> None:
    async def main() -> Any:
        async with Mistral(server_url=emulator.url) as client:
            return await nb_mistral.astream(
                "The order", model=MODEL, client=client, response_format=Order
            )

    reply = asyncio.run(main())
    assert isinstance(reply.parsed, Order)


def test_chat_parse_against_the_emulator(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    messages = [{"role": "user", "content": "Extract the order"}]
    result = client.chat.parse(Order, model=MODEL, messages=messages)
    message = result.choices[0].message
    assert isinstance(message.parsed, Order)
    assert message.parsed == Order.model_validate_json(message.content)  # type: ignore[arg-type]
    (body,) = chat_bodies(emulator)
    assert body["stream"] is False and body["response_format"]["type"] == "json_schema"

    async def parse_async() -> Any:
        async with Mistral(server_url=emulator.url) as client:
            return await client.chat.parse_async(Order, model=MODEL, messages=messages)

    assert asyncio.run(parse_async()).choices[0].message.parsed == message.parsed


def test_chat_parse_raises_on_a_reply_that_does_not_fit(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    with pytest.raises(ValidationError):
        client.chat.parse(
            Order, model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=3
        )


def test_emulator_json_is_deterministic(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    messages = [{"role": "user", "content": "Same prompt"}]
    first = client.chat.complete(model=MODEL, messages=messages, response_format=Order)
    second = client.chat.complete(model=MODEL, messages=messages, response_format=Order)
    assert first.choices[0].message.content == second.choices[0].message.content
    json.loads(str(first.choices[0].message.content))


class Shapes(BaseModel):
    """Schema features the emulator's JSON must satisfy."""

    when: datetime.datetime
    day: datetime.date
    ident: uuid.UUID
    ratio: float = Field(gt=0.25, lt=0.5)
    step: int = Field(ge=11, multiple_of=5)
    negative: int = Field(lt=-3)
    mode: Literal["fast", "slow"]
    counts: dict[str, int]
    pair: tuple[int, str]
    unique: set[int] = Field(min_length=2)
    either: Address | LineItem
    maybe: Node | None
    short: str = Field(max_length=3)
    long: str = Field(min_length=40)
    few: list[int] = Field(max_length=1)


@pytest.mark.parametrize("model", [Order, Shapes, Node, Address])
def test_emulator_json_validates_against_the_schema(model: type[BaseModel]) -> None:
    schema = response_format_of(model)["json_schema"]["schema"]
    value = example(schema, words=["alpha", "beta", "gamma"])
    model.model_validate(value)
    model.model_validate_json(json.dumps(value))


def test_live_view_shows_json_then_the_parsed_object(emulator: Emulator) -> None:
    from nb_mistral._render import ReplyRenderer

    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream(
        "Extract the order", model=MODEL, client=client, response_format=Order
    )
    page = ReplyRenderer(reply).html()
    assert '<pre><code class="language-json">' in page
    assert "Parsed into <code>Order</code>" in page and "language-python" in page
    broken = nb_mistral.stream(
        "Extract it", model=MODEL, client=client, response_format=Order, max_tokens=4
    )
    page = ReplyRenderer(broken).html()
    assert "Not parsed (<code>.parse_error</code>)" in page and "validation error" in page


def test_schema_names_keep_to_safe_characters() -> None:
    from typing import Generic, TypeVar

    Item = TypeVar("Item")

    class Page(BaseModel, Generic[Item]):
        items: list[Item]

    assert response_format_of(Page[int])["json_schema"]["name"] == "Page_int_"


class Ticket(BaseModel):
    label: Priority
    summary: str


def test_map_parses_every_item_and_to_pandas_expands_the_fields(emulator: Emulator) -> None:
    """``map(..., response_format=Model)``: each item's reply is parsed, and ``to_pandas``
    gives one column per field, on the input's index."""
    import pandas as pd

    client = Mistral(server_url=emulator.url)
    tickets = pd.DataFrame(
        {"title": ["printer on fire", "typo on page 2", "password reset"]},
        index=["t1", "t2", "t3"],
    )
    batch = nb_mistral.map(
        "Classify the ticket: {title}",
        tickets,
        model=MODEL,
        client=client,
        response_format=Ticket,
        progress=False,
    )
    assert all(isinstance(reply.parsed, Ticket) for reply in batch), [r.parse_error for r in batch]
    frame = batch.to_pandas()
    assert list(frame.index) == ["t1", "t2", "t3"]
    assert list(frame.columns) == ["label", "summary"]
    assert frame.loc["t2", "summary"] == batch[1].parsed.summary
    bodies = chat_bodies(emulator)
    assert len(bodies) == 3
    assert all(body["response_format"]["json_schema"]["name"] == "Ticket" for body in bodies)
