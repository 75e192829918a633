"""How a test talks to the client: ``SyncDriver`` and ``AsyncDriver`` (both spellings of
``stream_async``), so that one suite runs every path; ``Waits`` records retry waits instead of
sleeping them. The ``driver`` fixture (in ``conftest.py``) gives each of the three.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from nb_mistral import (
    ChatCompletionResponse,
    Mistral,
    MistralError,
    ModelList,
    RetryPolicy,
    UserMessage,
)

MODEL = "mistral-small-latest"
MESSAGES = [UserMessage(content="Say hello")]
TOKENS = ["Hello", ",", " world", "!", " How", " are", " you", "?"]
FULL = [*TOKENS, ""]  # what a good stream delivers: the deltas, then the final empty one

Drained = tuple[list[Any], MistralError | None]


class Waits:
    """Records the retry waits instead of sleeping them."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def policy(self, max_retries: int = 2, **kwargs: Any) -> RetryPolicy:
        return RetryPolicy(max_retries, sleep=self.sleep, async_sleep=self.async_sleep, **kwargs)


class Driver:
    """How a test talks to the client; ``SyncDriver`` and ``AsyncDriver`` say it their way."""

    mode = ""

    def drain(self, client: Mistral, **options: Any) -> Drained:
        """Stream a reply; the delta contents delivered and the ``MistralError`` that ended
        it (any other exception fails the test)."""
        raise NotImplementedError

    def first(self, client: Mistral, count: int) -> list[Any]:
        """Take ``count`` deltas, then leave the block."""
        raise NotImplementedError

    def complete(self, client: Mistral, **options: Any) -> ChatCompletionResponse:
        raise NotImplementedError

    def models(self, client: Mistral) -> ModelList:
        raise NotImplementedError

    def close(self, client: Mistral) -> None:
        raise NotImplementedError

    def httpx_client(self, **kwargs: Any) -> dict[str, Any]:
        """``Mistral`` keyword arguments giving it an httpx client of our own making."""
        raise NotImplementedError

    def finish(self) -> None:
        pass


class SyncDriver(Driver):
    mode = "sync"

    def drain(self, client: Mistral, **options: Any) -> Drained:
        delivered: list[Any] = []
        try:
            with client.chat.stream(model=MODEL, messages=MESSAGES, **options) as stream:
                for event in stream:
                    delivered.append(event.data.choices[0].delta.content)
        except MistralError as exc:
            return delivered, exc
        return delivered, None

    def first(self, client: Mistral, count: int) -> list[Any]:
        delivered = []
        with client.chat.stream(model=MODEL, messages=MESSAGES) as stream:
            for event in stream:
                delivered.append(event.data.choices[0].delta.content)
                if len(delivered) == count:
                    break
        return delivered

    def complete(self, client: Mistral, **options: Any) -> ChatCompletionResponse:
        return client.chat.complete(model=options.pop("model", MODEL), messages=MESSAGES, **options)

    def models(self, client: Mistral) -> ModelList:
        return client.models.list()

    def close(self, client: Mistral) -> None:
        client.close()

    def httpx_client(self, **kwargs: Any) -> dict[str, Any]:
        return {"client": httpx.Client(**kwargs)}


class AsyncDriver(Driver):
    """Runs each call on one event loop of the test's own, as a script would."""

    def __init__(self, how: str) -> None:
        self.mode = f"async-{how}"
        self.how = how
        self.loop = asyncio.new_event_loop()

    def _open(self, client: Mistral, **options: Any) -> Any:
        pending = client.chat.stream_async(model=MODEL, messages=MESSAGES, **options)
        return pending if self.how == "plain" else _Awaited(pending)

    def drain(self, client: Mistral, **options: Any) -> Drained:
        async def main() -> Drained:
            delivered: list[Any] = []
            try:
                async with self._open(client, **options) as stream:
                    async for event in stream:
                        delivered.append(event.data.choices[0].delta.content)
            except MistralError as exc:
                return delivered, exc
            return delivered, None

        return self.loop.run_until_complete(main())

    def first(self, client: Mistral, count: int) -> list[Any]:
        async def main() -> list[Any]:
            delivered = []
            async with self._open(client) as stream:
                async for event in stream:
                    delivered.append(event.data.choices[0].delta.content)
                    if len(delivered) == count:
                        break
            return delivered

        return self.loop.run_until_complete(main())

    def complete(self, client: Mistral, **options: Any) -> ChatCompletionResponse:
        model = options.pop("model", MODEL)
        coroutine = client.chat.complete_async(model=model, messages=MESSAGES, **options)
        return self.loop.run_until_complete(coroutine)

    def models(self, client: Mistral) -> ModelList:
        return self.loop.run_until_complete(client.models.list_async())

    def close(self, client: Mistral) -> None:
        self.loop.run_until_complete(client.aclose())

    def httpx_client(self, **kwargs: Any) -> dict[str, Any]:
        return {"async_client": httpx.AsyncClient(**kwargs)}

    def finish(self) -> None:
        self.loop.close()


class _Awaited:
    """``async with await pending``, written as a context manager so both spellings share
    the drivers' code."""

    def __init__(self, pending: Any) -> None:
        self._pending = pending
        self._stream: Any = None

    async def __aenter__(self) -> Any:
        self._stream = await self._pending
        return await self._stream.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._stream.__aexit__(*exc_info)
