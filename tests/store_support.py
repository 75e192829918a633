"""Helpers of the store tests: record a real request to the emulator, as the client will."""

from __future__ import annotations

from typing import Any

import httpx

from nb_mistral import CompletionEvent, EventStream, EventStreamAsync
from nb_mistral.store import CHAT_ENDPOINT, Recorder, Store, open_store, request_key


def new_store(path: Any) -> Store:
    store = open_store(path, shared=False)
    assert isinstance(store, Store)
    return store


def chat_body(prompt: str, model: str = "mistral-small-latest", **options: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        **options,
        "stream": True,
    }


def key_of(url: str, body: dict[str, Any]) -> str:
    return request_key(url, CHAT_ENDPOINT, body)


def record_live(
    store: Store,
    url: str,
    body: dict[str, Any],
    *,
    api_key: str | None = None,
    stop_after: int | None = None,
    **recorder_options: Any,
) -> tuple[list[CompletionEvent], Recorder]:
    """Stream ``body`` from ``url`` through ``EventStream`` over a tapped response."""
    recorder = store.recorder(server_url=url, body=body, **recorder_options)
    headers = {"Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    events: list[CompletionEvent] = []
    with httpx.Client() as client:
        request = client.build_request("POST", url + CHAT_ENDPOINT, json=body, headers=headers)
        response = client.send(request, stream=True)
        with EventStream(recorder.tap(response), CompletionEvent) as stream:
            for event in stream:
                events.append(event)
                if stop_after is not None and len(events) >= stop_after:
                    break
    if stop_after is not None:
        recorder.finish(error=KeyboardInterrupt())
    else:
        recorder.finish()
    return events, recorder


async def record_live_async(
    store: Store, url: str, body: dict[str, Any]
) -> tuple[list[CompletionEvent], Recorder]:
    recorder = store.recorder(server_url=url, body=body)
    events: list[CompletionEvent] = []
    async with httpx.AsyncClient() as client:
        request = client.build_request("POST", url + CHAT_ENDPOINT, json=body)
        response = await client.send(request, stream=True)
        async with EventStreamAsync(recorder.tap(response), CompletionEvent) as stream:
            async for event in stream:
                events.append(event)
    recorder.finish()
    return events, recorder


def text_of(events: list[CompletionEvent]) -> str:
    return "".join(event.data.choices[0].delta.text for event in events if event.data.choices)
