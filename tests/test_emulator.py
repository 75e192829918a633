"""The emulator over real loopback HTTP: wire format, replies, errors, pacing, disconnects."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from nb_mistral.emulator import EMULATOR_NOTICE, Emulator

CHAT = "/v1/chat/completions"
HEX32 = re.compile(r"[0-9a-f]{32}")
HTML = '<img src=x onerror="alert(1)"> & <script>alert("x")</script>'
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

Factory = Callable[..., Emulator]


def body(prompt: str = "Explain quicksort in Python", **extra: Any) -> dict[str, Any]:
    return {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }


def stream_raw(url: str, payload: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        client.stream("POST", CHAT, json={**payload, "stream": True}) as response,
    ):
        return response, response.read()


def parse_events(raw: bytes) -> list[Any]:
    """Split a raw SSE body into its ``data`` values, checking the framing on the way."""
    assert raw.endswith(b"\n\n")
    events = []
    for block in raw[:-2].split(b"\n\n"):
        assert block.startswith(b"data: ") and b"\n" not in block, block[:200]
        data = block[len(b"data: ") :].decode("utf-8")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def chunks(url: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    response, raw = stream_raw(url, payload)
    assert response.status_code == 200
    events = parse_events(raw)
    assert events[-1] == "[DONE]"
    assert "[DONE]" not in events[:-1]
    return events[:-1]


def text_deltas(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events[1:-1]:
        content = event["choices"][0]["delta"]["content"]
        if isinstance(content, str):
            out.append(content)
    return out


def complete(url: str, payload: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url + CHAT, json={**payload, "stream": False}, headers=headers, timeout=10)


def raw_http(url: str, request: bytes) -> bytes:
    """Send bytes on one socket and read until the server closes it."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def post_bytes(path: str, payload: dict[str, Any], *, close: bool) -> bytes:
    data = json.dumps(payload).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(data)}\r\n" + ("Connection: close\r\n" if close else "")
    return head.encode() + b"\r\n" + data


def split_chunked(data: bytes) -> tuple[list[bytes], bytes]:
    """Decode one chunked body from ``data``; return its chunks and the bytes after it."""
    pieces = []
    while True:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            assert data.startswith(b"\r\n")
            return pieces, data[2:]
        pieces.append(data[:size])
        assert data[size : size + 2] == b"\r\n"
        data = data[size + 2 :]


# -- streaming wire format ------------------------------------------------------------


def test_stream_headers_and_chunked_encoding(emulator: Emulator) -> None:
    response, _ = stream_raw(emulator.url, body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert HEX32.fullmatch(response.headers["x-request-id"])


def test_stream_chunk_objects_like_the_official_api(emulator: Emulator) -> None:
    _, raw = stream_raw(emulator.url, body())
    events = parse_events(raw)
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert events[-1] == "[DONE]"
    chunk_events = events[:-1]
    first, middle, last = chunk_events[0], chunk_events[1:-1], chunk_events[-1]
    ids = {e["id"] for e in chunk_events}
    assert len(ids) == 1 and HEX32.fullmatch(ids.pop())
    for event in chunk_events:
        assert event["object"] == "chat.completion.chunk"
        assert event["model"] == "mistral-small-latest"
        assert isinstance(event["created"], int)
        assert [c["index"] for c in event["choices"]] == [0]
    assert first["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "finish_reason": None,
    }
    assert len(middle) > 50
    for event in middle:
        assert set(event) == {"id", "object", "created", "model", "choices"}
        choice = event["choices"][0]
        assert choice["finish_reason"] is None
        assert list(choice["delta"]) == ["content"] and choice["delta"]["content"]
    assert last["choices"][0] == {"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}
    usage = last["usage"]
    assert usage["completion_tokens"] == len(middle)
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # compact JSON, non-ASCII kept as is, exactly like the real server
    for line in raw.split(b"\n\n")[:-2]:
        obj = json.loads(line[6:])
        compact = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        assert line[6:].decode() == compact


def test_one_http_chunk_per_sse_event(emulator: Emulator) -> None:
    response = raw_http(emulator.url, post_bytes(CHAT, body(stream=True), close=True))
    head, rest = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ntransfer-encoding: chunked" in head.lower()
    pieces, after = split_chunked(rest)
    assert after == b""
    assert len(pieces) > 50
    for piece in pieces:
        assert piece.startswith(b"data: ") and piece.endswith(b"\n\n")
        assert piece.count(b"\n\n") == 1
    assert pieces[-1] == b"data: [DONE]\n\n"


def test_stream_and_non_stream_agree(emulator: Emulator) -> None:
    events = chunks(emulator.url, body())
    response = complete(emulator.url, body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    obj = response.json()
    assert obj["object"] == "chat.completion"
    assert HEX32.fullmatch(obj["id"])
    assert obj["model"] == "mistral-small-latest"
    assert isinstance(obj["created"], int)
    (choice,) = obj["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["tool_calls"] is None
    assert "".join(text_deltas(events)) == choice["message"]["content"]
    assert obj["usage"] == events[-1]["usage"]


def test_replies_are_deterministic(emulator: Emulator) -> None:
    first = text_deltas(chunks(emulator.url, body()))
    second = text_deltas(chunks(emulator.url, body()))
    assert first == second
    assert complete(emulator.url, body()).json()["choices"][0]["message"]["content"] == "".join(
        first
    )
    other = text_deltas(chunks(emulator.url, body("Something else entirely")))
    assert other != first


# -- the reply text -------------------------------------------------------------------


def reply_text(url: str, payload: dict[str, Any]) -> str:
    return complete(url, payload).json()["choices"][0]["message"]["content"]


def test_reply_is_marked_as_emulated_markdown(emulator: Emulator) -> None:
    text = reply_text(emulator.url, body("Explain quicksort in Python"))
    assert text.startswith(EMULATOR_NOTICE)
    assert "no model was called" in text.splitlines()[0]
    assert "\n> Explain quicksort in Python\n" in text
    assert "\n## Explain quicksort in Python" in text
    assert "\n```python\n" in text and "quicksort" in text.split("```python")[1]
    assert "\n| Keyword |" in text and "\n|---" in text
    assert re.search(r"^- \*\*.+\*\*", text, re.M)
    assert re.search(r"\*[^*\s][^*]*\*", text) and "`" in text
    tokens = text_deltas(chunks(emulator.url, body("Explain quicksort in Python")))
    assert 100 <= len(tokens) <= 300


def test_user_text_is_quoted_verbatim(emulator: Emulator) -> None:
    prompt = f"First line {HTML}\n  indented ünïcödé 🚀 line\n\nlast  line  "
    text = reply_text(emulator.url, body(prompt))
    quote = "\n".join("> " + line for line in prompt.split("\n"))
    assert f"\n\n{quote}\n\n" in text
    assert HTML in text


def test_system_prompt_and_turn_number(emulator: Emulator) -> None:
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Ahoy"},
        {"role": "user", "content": [{"type": "text", "text": "Tell me more"}]},
    ]
    text = reply_text(emulator.url, {"model": "mistral-large-latest", "messages": messages})
    assert "System prompt noted: “You are a pirate.”" in text
    assert "turn **2**" in text
    assert "\n> Tell me more\n" in text
    single = reply_text(emulator.url, body("Hello"))
    assert "turn **1**" in single and "System prompt" not in single


@pytest.mark.parametrize("n", [1, 7, 2000])
def test_max_tokens_gives_exactly_n_deltas(emulator: Emulator, n: int) -> None:
    events = chunks(emulator.url, body(max_tokens=n))
    deltas = text_deltas(events)
    assert len(deltas) == n == len(events) - 2
    assert all(deltas)
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == n
    response = complete(emulator.url, body(max_tokens=n)).json()
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["choices"][0]["message"]["content"] == "".join(deltas)


def test_max_tokens_cuts_the_natural_reply(emulator: Emulator) -> None:
    natural = text_deltas(chunks(emulator.url, body()))
    cut = text_deltas(chunks(emulator.url, body(max_tokens=12)))
    assert cut == natural[:12]
    longer = text_deltas(chunks(emulator.url, body(max_tokens=len(natural) + 80)))
    assert longer[: len(natural) - 1] == natural[:-1]
    assert "".join(longer).startswith("".join(natural))


# -- reasoning and tools --------------------------------------------------------------


def test_magistral_streams_thinking_first(emulator: Emulator) -> None:
    events = chunks(emulator.url, body(model="magistral-medium-latest"))
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [e["choices"][0]["delta"]["content"] for e in events[1:-1]]
    n_thinking = next(i for i, c in enumerate(contents) if isinstance(c, str))
    assert 10 <= n_thinking <= 25
    thinking = ""
    for content in contents[:n_thinking]:
        (part,) = content
        assert part["type"] == "thinking"
        (inner,) = part["thinking"]
        assert inner["type"] == "text"
        thinking += inner["text"]
    assert "Emulated reasoning" in thinking
    answer = contents[n_thinking:]
    assert all(isinstance(c, str) for c in answer)
    assert "".join(answer).startswith(EMULATOR_NOTICE)
    assert events[-1]["usage"]["completion_tokens"] == len(contents)

    message = complete(emulator.url, body(model="magistral-medium-latest")).json()["choices"][0][
        "message"
    ]
    assert message["content"] == [
        {"type": "thinking", "thinking": [{"type": "text", "text": thinking}]},
        {"type": "text", "text": "".join(answer)},
    ]


def test_tool_call_streamed(emulator: Emulator) -> None:
    events = chunks(emulator.url, body("Weather in Paris?", tools=[WEATHER_TOOL]))
    assert len(events) == 2
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    choice = events[1]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["delta"]["tool_calls"]
    assert re.fullmatch(r"[A-Za-z0-9]{9}", call["id"])
    assert call["type"] == "function" and call["index"] == 0
    assert call["function"]["name"] == "get_weather"
    args = json.loads(call["function"]["arguments"])
    assert args["city"] and isinstance(args["days"], int) and args["unit"] == "celsius"
    assert events[1]["usage"]["completion_tokens"] >= 1


def test_tool_call_non_streaming_and_tool_choice_none(emulator: Emulator) -> None:
    obj = complete(emulator.url, body("Weather?", tools=[WEATHER_TOOL])).json()
    choice = obj["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"

    plain = complete(emulator.url, body("Weather?", tools=[WEATHER_TOOL], tool_choice="none"))
    assert plain.json()["choices"][0]["finish_reason"] == "stop"
    assert plain.json()["choices"][0]["message"]["content"].startswith(EMULATOR_NOTICE)


def test_tool_result_gets_a_text_answer(emulator: Emulator) -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "abcdefghi"}]},
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "abcdefghi"},
    ]
    payload = {"model": "mistral-small-latest", "messages": messages, "tools": [WEATHER_TOOL]}
    choice = complete(emulator.url, payload).json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert 'Tool result noted: “{"temp": 21}”' in choice["message"]["content"]


# -- models and errors ----------------------------------------------------------------


def test_models_list(emulator: Emulator) -> None:
    response = httpx.get(emulator.url + "/v1/models")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    obj = response.json()
    assert obj["object"] == "list"
    ids = [m["id"] for m in obj["data"]]
    for wanted in [
        "mistral-large-latest",
        "mistral-medium-latest",
        "mistral-small-latest",
        "codestral-latest",
        "open-mistral-nemo",
        "magistral-medium-latest",
        "magistral-small-latest",
    ]:
        assert wanted in ids
    for model in obj["data"]:
        assert model["object"] == "model" and model["owned_by"] == "mistralai"
        assert model["capabilities"]["completion_chat"] is True
        assert isinstance(model["created"], int) and model["max_context_length"] > 0
        assert model["name"] and model["description"].startswith("Emulated")


@pytest.mark.parametrize(
    "model", ["mistral-large-latest", "ministral-8b-latest", "pixtral-large-latest"]
)
def test_listed_model_names_are_accepted(emulator: Emulator, model: str) -> None:
    assert complete(emulator.url, body(model=model)).status_code == 200


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_unknown_model_is_400(emulator: Emulator) -> None:
    obj = error(complete(emulator.url, body(model="gpt-4o")), 400)
    assert obj == {
        "object": "error",
        "message": "Invalid model: gpt-4o",
        "type": "invalid_model",
        "param": None,
        "code": "1500",
    }


@pytest.mark.parametrize("missing", ["model", "messages"])
def test_missing_field_is_422(emulator: Emulator, missing: str) -> None:
    payload = body()
    del payload[missing]
    obj = error(httpx.post(emulator.url + CHAT, json=payload), 422)
    assert obj["object"] == "error" and obj["type"] == "invalid_request_error"
    assert obj["param"] is None and obj["code"] is None
    (detail,) = obj["message"]["detail"]
    assert detail == {
        "type": "missing",
        "loc": ["body", missing],
        "msg": "Field required",
        "input": payload,
    }


def test_invalid_json_is_422(emulator: Emulator) -> None:
    response = httpx.post(
        emulator.url + CHAT, content=b'{"model": ', headers={"content-type": "application/json"}
    )
    obj = error(response, 422)
    assert obj["type"] == "invalid_request_error"
    assert obj["message"]["detail"][0]["type"] == "json_invalid"


def test_bad_max_tokens_is_422(emulator: Emulator) -> None:
    obj = error(complete(emulator.url, body(max_tokens="ten")), 422)
    assert obj["message"]["detail"][0]["loc"] == ["body", "max_tokens"]


def test_unknown_path_is_404_and_wrong_method_405(emulator: Emulator) -> None:
    assert error(httpx.get(emulator.url + "/v1/nothing"), 404) == {"detail": "Not Found"}
    assert error(httpx.post(emulator.url + "/v1/models"), 405) == {"detail": "Method Not Allowed"}
    response = httpx.get(emulator.url + CHAT)
    assert error(response, 405) == {"detail": "Method Not Allowed"}
    assert response.headers["allow"] == "POST"


def test_api_key_required_only_when_set(emulator_factory: Factory) -> None:
    open_emu = emulator_factory()
    assert complete(open_emu.url, body()).status_code == 200
    assert complete(open_emu.url, body(), authorization="Bearer anything").status_code == 200

    emu = emulator_factory(api_key="sk-emulated")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "sk-emulated"}):
        response = complete(emu.url, body(), **headers)
        obj = error(response, 401)
        assert obj == {"message": "Unauthorized", "request_id": response.headers["x-request-id"]}
        assert HEX32.fullmatch(obj["request_id"])
    assert error(httpx.get(emu.url + "/v1/models"), 401)["message"] == "Unauthorized"
    good = {"authorization": "Bearer sk-emulated"}
    assert complete(emu.url, body(), **good).status_code == 200
    assert httpx.get(emu.url + "/v1/models", headers=good).status_code == 200


# -- pacing ---------------------------------------------------------------------------


def timed_stream(url: str, payload: dict[str, Any]) -> tuple[float, list[float]]:
    """Total time of a stream and the arrival time of each event."""
    arrivals = []
    start = time.perf_counter()
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        client.stream("POST", CHAT, json={**payload, "stream": True}) as response,
    ):
        for line in response.iter_lines():
            if line:
                arrivals.append(time.perf_counter() - start)
    return time.perf_counter() - start, arrivals


def test_tokens_per_second_paces_the_stream(emulator_factory: Factory) -> None:
    emu = emulator_factory(tokens_per_second=100)
    elapsed, arrivals = timed_stream(emu.url, body(max_tokens=20))
    assert 0.18 <= elapsed < 2.0
    # tokens arrive spread out, not in one burst at the end
    assert arrivals[11] - arrivals[1] >= 0.08


def test_tokens_per_second_can_change_while_running(emulator_factory: Factory) -> None:
    emu = emulator_factory(tokens_per_second=1000)
    fast, _ = timed_stream(emu.url, body(max_tokens=20))
    emu.tokens_per_second = 25
    slow, _ = timed_stream(emu.url, body(max_tokens=20))
    assert fast < 0.5 and slow >= 0.78


def test_as_fast_as_possible(emulator: Emulator) -> None:
    elapsed, arrivals = timed_stream(emulator.url, body(max_tokens=2000))
    assert len(arrivals) == 2003
    assert elapsed < 2.0


# -- connections ----------------------------------------------------------------------


def test_client_closing_mid_stream_is_a_disconnect(emulator_factory: Factory) -> None:
    emu = emulator_factory(tokens_per_second=1)
    with httpx.Client(base_url=emu.url, timeout=10) as client:
        with client.stream("POST", CHAT, json=body(stream=True)) as response:
            lines = response.iter_lines()
            assert json.loads(next(lines)[6:])["choices"][0]["delta"]["role"] == "assistant"
            closed_at = time.perf_counter()
        assert emu.wait_for_disconnect(timeout=5)
        # noticed from the reader's EOF, well before the next token (1 s away) is due
        assert time.perf_counter() - closed_at < 0.8
        assert emu.disconnects == 1
        assert not emu.wait_for_disconnect(timeout=0.05, n=2)
        # the server carries on serving
        emu.tokens_per_second = None
        assert client.post(CHAT, json=body()).status_code == 200
    assert emu.disconnects == 1


def test_process_killed_mid_stream_is_a_disconnect(emulator_factory: Factory) -> None:
    emu = emulator_factory(tokens_per_second=5)
    script = (
        "import httpx, sys\n"
        "with httpx.stream('POST', sys.argv[1] + '/v1/chat/completions', json={"
        "'model': 'mistral-small-latest', 'stream': True,"
        " 'messages': [{'role': 'user', 'content': 'hi'}]}) as r:\n"
        "    for line in r.iter_lines():\n"
        "        print(line, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, emu.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("data: ")
        proc.kill()
        proc.wait(timeout=10)
        assert emu.wait_for_disconnect(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_finished_streams_are_not_disconnects(emulator: Emulator) -> None:
    chunks(emulator.url, body())
    complete(emulator.url, body())
    with (
        httpx.Client(base_url=emulator.url) as client,
        client.stream("POST", CHAT, json=body(stream=True)) as response,
    ):
        for line in response.iter_lines():
            if line == "data: [DONE]":
                break
    assert not emulator.wait_for_disconnect(timeout=0.2)
    assert emulator.disconnects == 0


def test_keep_alive_serves_several_requests_on_one_connection(emulator: Emulator) -> None:
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        ports = set()
        for payload in (body(stream=True), body(), body(stream=True, max_tokens=3)):
            with client.stream("POST", CHAT, json=payload) as response:
                response.read()
                assert response.status_code == 200
                sock = response.extensions["network_stream"].get_extra_info("socket")
                ports.add(sock.getsockname()[1])
        assert client.get("/v1/models").status_code == 200
    assert len(ports) == 1
    assert emulator.request_count == 4


def test_pipelined_requests_on_a_raw_socket(emulator: Emulator) -> None:
    data = raw_http(
        emulator.url,
        post_bytes(CHAT, body(stream=True, max_tokens=4), close=False)
        + post_bytes(CHAT, body(max_tokens=4), close=True),
    )
    head, rest = data.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head.lower()
    pieces, rest = split_chunked(rest)
    assert len(pieces) == 4 + 3
    head, second = rest.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in head.lower()
    length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
    assert len(second) == length
    assert json.loads(second)["choices"][0]["finish_reason"] == "length"


def test_malformed_http_gets_a_4xx_and_a_close(emulator: Emulator) -> None:
    assert raw_http(emulator.url, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    huge = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    assert raw_http(emulator.url, huge).startswith(b"HTTP/1.1 431 ")


def test_half_closed_client_still_gets_a_whole_response(emulator: Emulator) -> None:
    parts = urlsplit(emulator.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(post_bytes(CHAT, body(max_tokens=3), close=False))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(rest)["choices"][0]["finish_reason"] == "length"


def test_chunked_request_body_is_accepted(emulator: Emulator) -> None:
    payload = json.dumps(body()).encode()

    def parts() -> Any:
        yield payload[:10]
        yield payload[10:]

    response = httpx.post(emulator.url + CHAT, content=parts())
    assert response.status_code == 200
    assert emulator.requests[-1].headers["transfer-encoding"] == "chunked"
    assert emulator.requests[-1].json == body()


def test_requests_are_recorded(emulator: Emulator) -> None:
    complete(emulator.url, body(temperature=0.2), Authorization="Bearer sk-x")
    httpx.get(emulator.url + "/v1/models?x=1")
    first, second = emulator.requests
    assert (first.method, first.path) == ("POST", CHAT)
    assert first.headers["authorization"] == "Bearer sk-x"
    assert first.headers["content-type"] == "application/json"
    assert first.json == {**body(temperature=0.2), "stream": False}
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)
    assert emulator.request_count == 2


def test_stop_closes_open_streams_promptly(emulator_factory: Factory) -> None:
    emu = emulator_factory(tokens_per_second=2)
    errors: list[BaseException] = []
    with (
        httpx.Client(base_url=emu.url, timeout=10) as client,
        client.stream("POST", CHAT, json=body(stream=True)) as response,
    ):
        lines = response.iter_lines()
        next(lines)
        started = time.perf_counter()
        emu.stop()
        assert time.perf_counter() - started < 2.0
        try:
            for _ in lines:
                pass
        except httpx.HTTPError as e:
            errors.append(e)
    assert errors, "the stream should break when the emulator stops"
    assert not any(t.name == "nb_mistral-emulator" for t in threading.enumerate() if t.is_alive())
    with pytest.raises(httpx.ConnectError):
        httpx.get(emu.url + "/v1/models")


def test_usable_from_async_code(emulator: Emulator) -> None:
    async def main() -> str:
        async with (
            httpx.AsyncClient(base_url=emulator.url) as client,
            client.stream("POST", CHAT, json=body(stream=True)) as response,
        ):
            return "".join([line async for line in response.aiter_lines()])

    assert asyncio.run(main()).endswith("data: [DONE]")


def test_fixed_port_and_context_manager() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Emulator(port=port) as emu:
        assert emu.url == f"http://127.0.0.1:{port}"
        assert httpx.get(emu.url + "/v1/models").status_code == 200
        with pytest.raises(OSError):
            Emulator(port=port).start()


# -- command line ---------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nb_mistral.emulator", "--port", "0", "--tokens-per-second", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(
            r"nb_mistral emulator listening on (http://127\.0\.0\.1:(\d+)) "
            r"\(set MISTRAL_SERVER_URL to this\)\n",
            line,
        )
        assert match, line
        url = match.group(1)
        assert int(match.group(2)) > 0
        assert httpx.get(url + "/v1/models").json()["object"] == "list"
        assert complete(url, body()).status_code == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
