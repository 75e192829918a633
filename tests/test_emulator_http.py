"""The emulator's HTTP stack and model list: connections, validation shapes, invalid models."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from nb_mistral.emulator import Emulator

CHAT = "/v1/chat/completions"
ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = re.compile(
    r"\b(?:mistral|magistral|codestral|pixtral|ministral|devstral|open-mi[sx]tral)-"
    r"(?:[a-z0-9]+-)*(?:latest|\d{4}|8x22b|nemo)\b"
)
# tests/test_widget.py configures a widget with a model the server does not list, on purpose
DELIBERATELY_UNLISTED = {"mistral-large-2411"}


def body(model: str = "mistral-small-latest", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def listed(url: str) -> list[str]:
    return [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]]


@pytest.mark.parametrize("model", ["mistral-gigantic-latest", "devstral-medium", "gpt-4o", ""])
def test_a_model_not_listed_is_400_invalid_model(emulator: Emulator, model: str) -> None:
    assert model not in listed(emulator.url)
    for stream in (False, True):
        response = httpx.post(emulator.url + CHAT, json=body(model, stream=stream))
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "object": "error",
            "message": f"Invalid model: {model}",
            "type": "invalid_model",
            "param": None,
            "code": "1500",
        }


def test_every_listed_model_is_served(emulator: Emulator) -> None:
    with httpx.Client(base_url=emulator.url) as client:
        for model in listed(emulator.url):
            response = client.post(CHAT, json=body(model, max_tokens=2))
            assert response.status_code == 200, model
            assert response.json()["model"] == model


def test_every_model_name_in_the_repository_is_listed(emulator: Emulator) -> None:
    """Tests, notebooks, benchmarks and the package only name models the emulator serves."""
    names: set[str] = set()
    for folder in ("nb_mistral", "tests", "notebooks", "bench"):
        for path in (ROOT / folder).rglob("*"):
            deliberate = path.name.startswith("test_emulator")  # unknown models on purpose
            if path.suffix in {".py", ".ipynb", ".md"} and not deliberate:
                names |= set(MODEL_NAME.findall(path.read_text(encoding="utf-8")))
    assert {"mistral-small-latest", "mistral-large-latest"} <= names
    assert names - set(listed(emulator.url)) == DELIBERATELY_UNLISTED


def test_sequential_requests_share_one_connection(emulator: Emulator) -> None:
    with httpx.Client(base_url=emulator.url) as client:
        for _ in range(20):
            with client.stream("POST", CHAT, json=body(stream=True, max_tokens=3)) as response:
                assert response.read().endswith(b"data: [DONE]\n\n")
    assert emulator.connections == 1
    for _ in range(3):
        httpx.get(emulator.url + "/v1/models")  # a new client, a new connection each
    assert emulator.connections == 4
    emulator.reset()
    assert emulator.connections == 0 and emulator.request_count == 0


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (
            [1, 2],
            {
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": [1, 2],
            },
        ),
        (
            {"model": "mistral-small-latest", "messages": ["hi"]},
            {
                "type": "model_attributes_type",
                "loc": ["body", "messages", 0],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": "hi",
            },
        ),
        (
            {**body(), "max_tokens": -1},
            {
                "type": "greater_than_equal",
                "loc": ["body", "max_tokens"],
                "msg": "Input should be greater than or equal to 0",
                "input": -1,
                "ctx": {"ge": 0},
            },
        ),
        (
            {**body(), "stream": "yes"},
            {
                "type": "bool_type",
                "loc": ["body", "stream"],
                "msg": "Input should be a valid boolean",
                "input": "yes",
            },
        ),
        (
            {**body(), "model": 3},
            {
                "type": "string_type",
                "loc": ["body", "model"],
                "msg": "Input should be a valid string",
                "input": 3,
            },
        ),
    ],
)
def test_validation_details_keep_the_api_shape(
    emulator: Emulator, payload: Any, detail: dict[str, Any]
) -> None:
    response = httpx.post(emulator.url + CHAT, content=json.dumps(payload).encode())
    assert response.status_code == 422
    assert response.json() == {
        "object": "error",
        "message": {"detail": [detail]},
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_cli_help_documents_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nb_mistral.emulator", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for flag in ("--rate-limit", "--max-concurrency", "--batch-seconds", "--tokens-per-second"):
        assert flag in out
    assert "nb_mistral_emulator_outcome" in out


def test_cli_limits_apply() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nb_mistral.emulator", "--port", "0", "--rate-limit", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"(http://\S+) ", proc.stdout.readline())
        assert match, "no address printed"
        with httpx.Client(base_url=match.group(1)) as client:
            codes = [client.post(CHAT, json=body(max_tokens=1)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
