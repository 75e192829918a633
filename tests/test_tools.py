"""Python functions as tools, against the emulator (and a scripted server for what the emulator
never does: unknown tool names, arguments that do not validate), both on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import pytest
from faulty_server import FaultyServer, Stream, dumps, ok, sse
from pydantic import BaseModel

import nb_mistral
from nb_mistral import Mistral
from nb_mistral._tools import Tool
from nb_mistral.emulator import Emulator

MODEL = "mistral-small-latest"
calls: list[tuple[str, Any]] = []


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict[str, Any]:
    """The current weather of a city.

    Args:
        city: Name of the city.
        unit: Temperature unit.
    """
    calls.append(("get_weather", city))
    return {"city": city, "temperature": 21, "unit": unit}


def to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit."""
    calls.append(("to_fahrenheit", celsius))
    return celsius * 9 / 5 + 32


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


class Point(BaseModel):
    x: int
    y: int


def distance(a: Point, b: Point) -> float:
    """Distance between two points."""
    return float(((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5)


def forbidden() -> str:
    """Never offered to the model."""
    raise AssertionError("an unoffered function was called")


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def chat_bodies(server: Any) -> list[Any]:
    return [r.json for r in server.requests if r.path.endswith("/chat/completions")]


def test_schema_from_signature_and_docstring() -> None:
    spec = Tool(get_weather).spec()
    function = spec["function"]
    assert spec["type"] == "function" and function["name"] == "get_weather"
    assert function["description"] == "The current weather of a city."
    params = function["parameters"]
    assert params["required"] == ["city"]
    assert params["properties"]["city"]["description"] == "Name of the city."
    assert params["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    nested = Tool(distance).spec()["function"]["parameters"]
    assert nested["$defs"]["Point"]["required"] == ["x", "y"]


def test_tool_loop_of_two_rounds(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    prompt = "Call get_weather for Paris, then to_fahrenheit on its temperature."
    reply = nb_mistral.stream(
        prompt, model=MODEL, client=client, tools=[get_weather, to_fahrenheit]
    )
    assert [name for name, _ in calls] == ["get_weather", "to_fahrenheit"]
    assert [call.function.name for call in reply.tool_calls] == ["get_weather", "to_fahrenheit"]
    roles = [m["role"] for m in reply.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    first_result = reply.messages[2]
    # the emulator picks the enum value the prompt names ("to_fahrenheit")
    assert json.loads(first_result["content"]) == {
        "city": "Paris",
        "temperature": 21,
        "unit": "fahrenheit",
    }
    assert first_result["tool_call_id"] == reply.tool_calls[0].id
    # the emulator quotes the results in its final answer
    assert (
        'Tool result noted: “{"city":"Paris","temperature":21,"unit":"fahrenheit"}”' in reply.text
    )
    bodies = chat_bodies(emulator)
    assert len(bodies) == 3
    assert [t["function"]["name"] for t in bodies[0]["tools"]] == ["get_weather", "to_fahrenheit"]
    assert bodies[2]["messages"] == reply.messages[:-1]  # the whole exchange was sent back
    assert reply.finish_reason == "stop"


def test_async_tool_is_awaited_on_the_running_loop(emulator: Emulator) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def lookup(city: str) -> str:
        """Look a city up."""
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return f"{city}: found"

    async def main() -> Any:
        async with Mistral(server_url=emulator.url) as client:
            reply = await nb_mistral.astream(
                "Use lookup on Paris", model=MODEL, client=client, tools=[lookup]
            )
            return reply, asyncio.get_running_loop()

    reply, loop = asyncio.run(main())
    assert loops == [loop]
    assert reply.messages[2]["content"] == "Paris: found"


def test_async_tool_from_sync_stream(emulator: Emulator) -> None:
    async def lookup(city: str) -> str:
        """Look a city up."""
        return f"{city}!"

    reply = nb_mistral.stream(
        "lookup Paris", model=MODEL, client=Mistral(server_url=emulator.url), tools=[lookup]
    )
    assert reply.messages[2]["content"] == "Paris!"


def test_a_tool_that_raises_sends_its_error_back(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream("Please explode", model=MODEL, client=client, tools=[explode])
    assert reply.error is None and reply.done
    result = reply.messages[2]
    assert result["role"] == "tool"
    assert result["content"] == "error: RuntimeError: boom: example reason"
    assert "Tool result noted: “error: RuntimeError: boom" in reply.text


def test_max_tool_rounds_stops_the_loop(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream(
        "weather?",
        model=MODEL,
        client=client,
        tools=[get_weather],
        tool_choice="any",
        max_tool_rounds=2,
    )
    assert len(chat_bodies(emulator)) == 3  # the first request and two more rounds
    assert len(calls) == 2 and reply.finish_reason == "tool_calls"
    # the calls left are answered, so that the conversation can go on, and say why
    assert reply.messages[-1] == {
        "role": "tool",
        "content": "error: not run: the limit of max_tool_rounds (2) was reached",
        "tool_call_id": reply.tool_calls[-1].id,
        "name": "get_weather",
    }
    assert [m["role"] for m in reply.messages].count("tool") == 3


def tool_call_stream(name: str, arguments: str) -> Stream:
    call = {
        "id": "call00001",
        "type": "function",
        "index": 0,
        "function": {"name": name, "arguments": arguments},
    }
    first = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ],
    }
    last = {
        **first,
        "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}],
    }
    return Stream((sse(first), sse(last)))


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("forbidden", "{}", "error: there is no tool named 'forbidden' (tools: get_weather)"),
        (
            "get_weather",
            '{"town": "Paris"}',
            "error: invalid arguments for get_weather: city: "
            "Field required; town: Extra inputs are not permitted",
        ),
        (
            "get_weather",
            '{"city": "Paris", "unit": "kelvin"}',
            "error: invalid arguments for get_weather: unit: Input should be 'celsius' or "
            "'fahrenheit'",
        ),
        (
            "get_weather",
            "not json",
            "error: invalid arguments for get_weather: Expecting value: line 1 column 1 (char 0)",
        ),
        (
            "get_weather",
            "[1]",
            "error: invalid arguments for get_weather: the arguments must be "
            "a JSON object, not list",
        ),
    ],
)
def test_model_mistakes_become_error_results_never_calls(
    faulty_server: FaultyServer, name: str, arguments: str, expected: str
) -> None:
    faulty_server.script(tool_call_stream(name, arguments), ok(["Sorry."]))
    client = Mistral(server_url=faulty_server.url, max_retries=0)
    reply = nb_mistral.stream("hi", model=MODEL, client=client, tools=[get_weather])
    assert calls == []
    first, second = chat_bodies(faulty_server)
    sent = second["messages"][-1]
    assert sent == {"role": "tool", "content": expected, "tool_call_id": "call00001", "name": name}
    assert reply.text == "Sorry." and reply.error is None
    assert dumps(first["tools"])  # JSON specs went out


def test_tool_specs_on_the_client(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    client.chat.complete(
        model=MODEL, messages=[{"role": "user", "content": "x"}], tools=[get_weather]
    )
    (body,) = chat_bodies(emulator)
    assert body["tools"] == [Tool(get_weather).spec()]
    assert calls == []  # the client only describes functions; nb_mistral.stream runs them


def test_live_view_shows_each_call_and_its_result(emulator: Emulator) -> None:
    from nb_mistral._render import ReplyRenderer

    def shout(text: str) -> str:
        """Upper-case a text."""
        return "<img src=x onerror=alert(1)> " + text.upper()

    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream("Please shout hello", model=MODEL, client=client, tools=[shout])
    page = ReplyRenderer(reply).html()
    assert "Tool call <code>shout</code>" in page and "<p>Result:</p>" in page
    assert "EXAMPLE TEXT" in page
    assert "<img" not in page  # the result is text, escaped like everything else


def test_async_tool_from_a_foreground_cell_while_the_loop_runs(emulator: Emulator) -> None:
    """A foreground cell blocks the kernel's loop: the function runs on a loop of its own."""
    seen: list[asyncio.AbstractEventLoop] = []

    async def lookup(city: str) -> str:
        """Look a city up."""
        seen.append(asyncio.get_running_loop())
        return f"{city}?"

    async def cell() -> tuple[Any, asyncio.AbstractEventLoop]:
        client = Mistral(server_url=emulator.url)
        reply = nb_mistral.stream("lookup Paris", model=MODEL, client=client, tools=[lookup])
        return reply, asyncio.get_running_loop()

    reply, kernel_loop = asyncio.run(cell())
    assert reply.messages[2]["content"] == "Paris?"
    assert len(seen) == 1 and seen[0] is not kernel_loop


def test_usage_adds_up_over_the_rounds(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    reply = nb_mistral.stream(
        "Call get_weather, then to_fahrenheit.",
        model=MODEL,
        client=client,
        tools=[get_weather, to_fahrenheit],
    )
    rounds = [
        client.chat.complete(**{k: v for k, v in body.items() if k != "stream"}).usage
        for body in chat_bodies(emulator)[:3]
    ]
    assert reply.usage.completion_tokens == sum(u.completion_tokens for u in rounds)
    assert reply.usage.prompt_tokens == sum(u.prompt_tokens for u in rounds)


def numpy_style(city: str, days: int = 2) -> str:
    """Forecast for a city.

    Parameters
    ----------
    city : str
        The city,
        by name.
    days : int
        How many days.

    Returns
    -------
    str
    """
    return city


def sphinx_style(city: str) -> str:
    """Forecast.

    :param city: The city.
    :returns: text
    """
    return city


@pytest.mark.parametrize(
    ("function", "description", "city"),
    [
        (numpy_style, "Forecast for a city.", "The city, by name."),
        (sphinx_style, "Forecast.", "The city."),
        (get_weather, "The current weather of a city.", "Name of the city."),
    ],
)
def test_docstring_styles(function: Any, description: str, city: str) -> None:
    spec = Tool(function).spec()["function"]
    assert spec["description"] == description
    assert spec["parameters"]["properties"]["city"]["description"] == city
