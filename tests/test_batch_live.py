"""``nb_mistral.map`` / ``amap`` on the live backend, against the emulator on loopback."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import nb_mistral
from nb_mistral import APIError, Batch, BatchError, BatchInterrupted, MemoryCache, Mistral
from nb_mistral.emulator import Emulator, build_reply

MODEL = "mistral-small-latest"
SHORT = 16  # max_tokens: long enough for the reply to quote the prompt


def expected_text(prompt: str) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": SHORT}
    return "".join(build_reply(body).content)


def chat_requests(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.path == "/v1/chat/completions"]


def batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nb_mistral-batch" and t.is_alive()]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_thousand_items_rate_limited_in_order_and_paused_together(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(rate_limit=100)
    sent: list[float] = []  # when the client sent each request (its own clock and loop)

    async def record(request: httpx.Request) -> None:
        sent.append(time.monotonic())

    http = httpx.AsyncClient(event_hooks={"request": [record]})
    client = Mistral(server_url=emu.url, async_client=http)
    prompts = [f"item {n}" for n in range(1000)]
    batch = nb_mistral.map(
        "{item}", prompts, client=client, model=MODEL, concurrency=16,
        max_tokens=SHORT, progress=False,
    )  # fmt: skip
    assert isinstance(batch, Batch) and batch.done and len(batch) == 1000
    assert batch.errors == {}
    assert batch.texts == [expected_text(p) for p in prompts]
    assert emu.peak_in_flight <= 16
    limits = emu.rate_limits
    assert limits, "the rate limit was never reached: the test proves nothing"
    assert len(chat_requests(emu)) == 1000 + len(limits)  # each refusal sent again, once
    # every 429 paused every worker for its Retry-After: no request went out during a pause
    pauses = batch.pauses
    for limit in limits:
        assert any(
            start >= limit.at and until - start >= limit.retry_after for start, until in pauses
        )
    for start, until in pauses:
        assert [t for t in sent if start < t < until] == []
    assert batch.usage["completion_tokens"] == sum(r.tokens for r in batch)


def test_dataframe_round_trip_keeps_the_index(emulator: Emulator) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {"name": ["ada", "bob", "cy"], "age": [36, 41, 29]}, index=["t-7", "t-3", "t-9"]
    )
    client = Mistral(server_url=emulator.url)
    batch = nb_mistral.map(
        "{name} is {age}", frame, client=client, model=MODEL, max_tokens=SHORT, progress=False
    )
    series = batch.to_pandas()
    assert list(series.index) == ["t-7", "t-3", "t-9"]
    assert list(series) == [
        expected_text(f"{n} is {a}") for n, a in zip(frame.name, frame.age, strict=True)
    ]
    frame["summary"] = series  # aligns on the index
    assert frame.loc["t-3", "summary"] == expected_text("bob is 41")
    column = nb_mistral.map(
        "about {item}", frame["name"], client=client, model=MODEL, max_tokens=SHORT,
        progress=False,
    ).to_pandas()  # fmt: skip
    assert list(column.index) == list(frame.index) and column.name == "name"


def test_generator_input_and_callable_prompt(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)

    def numbers() -> Any:
        yield from range(7)

    def prompt(n: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"number {n * 10}"}]

    batch = nb_mistral.map(prompt, numbers(), client=client, model=MODEL, max_tokens=SHORT,
                           system="be brief", progress=False)  # fmt: skip
    assert batch.total is None and len(batch) == 7
    assert batch.texts == [expected_text_with_system(f"number {n * 10}") for n in range(7)]
    frame = batch.to_pandas()
    assert list(frame.columns) == ["index", "text", "error", "tokens"]
    assert list(frame["index"]) == list(range(7))


def expected_text_with_system(prompt: str) -> str:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": prompt}]
    body = {"model": MODEL, "messages": messages, "max_tokens": SHORT}
    return "".join(build_reply(body).content)


def test_template_reads_fields_of_dicts_namedtuples_and_objects(emulator: Emulator) -> None:
    from collections import namedtuple

    Point = namedtuple("Point", "x y")

    class Box:
        x, y = 5, 6

    client = Mistral(server_url=emulator.url)
    items = [{"x": 1, "y": 2}, Point(3, 4), Box()]
    batch = nb_mistral.map("at {x},{y} {{raw}} {missing}", items, client=client, model=MODEL,
                           max_tokens=SHORT, progress=False)  # fmt: skip
    sent = [r.json["messages"][-1]["content"] for r in chat_requests(emulator)]
    assert sorted(sent) == ["at 1,2 {raw} {missing}", "at 3,4 {raw} {missing}",
                            "at 5,6 {raw} {missing}"]  # fmt: skip
    assert batch.errors == {}


def test_a_failing_item_does_not_stop_the_batch(faulty_server: Any) -> None:
    from faulty_server import cut, error, ok

    faulty_server.script(
        ok(["zero"]),
        error(503, {"message": "busy"}),  # retried by the client's policy: item 1 succeeds
        ok(["one"]),
        error(400, {"message": "no such thing"}),  # item 2 fails
        cut(["two and a half"]),  # item 3 breaks mid-stream
        ok(["three"]),
    )
    client = Mistral(server_url=faulty_server.url, max_retries=nb_mistral.RetryPolicy(backoff=0))

    def prompt(n: int) -> str:
        if n == 5:
            raise ValueError("bad row")
        return f"item {n}"

    batch = nb_mistral.map(prompt, range(7), client=client, model=MODEL, concurrency=1,
                           progress=False)  # fmt: skip
    assert batch.texts[:2] == ["zero", "one"] and batch.texts[4] == "three"
    assert set(batch.errors) == {2, 3, 5}
    assert isinstance(batch.errors[2], APIError) and batch.errors[2].status_code == 400
    assert isinstance(batch.errors[3], nb_mistral.StreamError)
    assert batch[3].text == "two and a half"  # what arrived stays
    assert isinstance(batch.errors[5], ValueError)
    assert batch.failed == 3 and batch.finished == 4

    faulty_server.script(ok(["zero"]), error(400, {"message": "no"}), ok(["more"]))
    with pytest.raises(BatchError) as caught:
        nb_mistral.map(prompt, range(8), client=client, model=MODEL, concurrency=1,
                       errors="raise", progress=False)  # fmt: skip
    assert caught.value.index == 1 and caught.value.batch.done
    assert caught.value.batch.texts[0] == "zero"
    assert len(faulty_server.requests) == 2  # nothing sent after the failure


def test_stop_mid_batch_keeps_finished_and_disconnects(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(tokens_per_second=20)  # 0.4 s a stream: waves of 4
    client = Mistral(server_url=emu.url)
    batch = nb_mistral.map("{item}", [f"item {n}" for n in range(40)], client=client,
                           model=MODEL, concurrency=4, max_tokens=8, wait=False,
                           progress=False)  # fmt: skip
    assert isinstance(batch, Batch)
    # the first wave is done and the second one's requests have reached the server
    wait_until(lambda: batch.finished >= 4 and len(chat_requests(emu)) >= 8)
    batch.stop()
    assert batch.wait(10)
    # every stream the server began and the client did not read to its end was hung up on
    unfinished = len(chat_requests(emu)) - batch.finished
    assert unfinished >= 1
    assert emu.wait_for_disconnect(timeout=5, n=unfinished), (emu.disconnects, unfinished)
    assert len(batch) == 40  # every item of a sized input has its reply, run or not
    done = [r for r in batch if r.error is None]
    assert len(done) >= 4
    assert all(r.text == expected_text_short(r.request_messages) for r in done)
    assert all(r.stopped for r in batch if r.error is not None)
    wait_until(lambda: not batch_threads())


def expected_text_short(messages: list[dict[str, Any]]) -> str:
    return "".join(build_reply({"model": MODEL, "messages": messages, "max_tokens": 8}).content)


def test_interrupt_stops_every_stream_and_keeps_results(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(tokens_per_second=20)  # 0.4 s a stream: waves of 4
    client = Mistral(server_url=emu.url)
    seen: list[Batch] = []

    def interrupt_soon() -> None:
        wait_until(lambda: emu.request_count >= 8)
        time.sleep(0.5)  # some replies finish, others are mid-stream
        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon, daemon=True).start()
    with pytest.raises(BatchInterrupted) as caught:
        seen.append(nb_mistral.map("{item}", [f"item {n}" for n in range(40)], client=client,
                                   model=MODEL, concurrency=4, max_tokens=8,
                                   progress=False))  # fmt: skip
    assert not seen
    batch = caught.value.batch
    assert batch.done and batch.stopped > 0
    unfinished = len(chat_requests(emu)) - batch.finished
    assert unfinished >= 1
    assert emu.wait_for_disconnect(timeout=5, n=unfinished), (emu.disconnects, unfinished)
    for reply in batch:
        if reply.error is None:
            assert reply.text == expected_text_short(reply.request_messages)
    assert not batch_threads()


def test_amap_on_the_running_loop_leaves_no_task_behind(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(tokens_per_second=40)
    client = Mistral(server_url=emu.url)

    async def main() -> tuple[Batch, set[asyncio.Task[Any]]]:
        whole = await nb_mistral.amap("{item}", ["a", "b"], client=client, model=MODEL,
                                      max_tokens=8, progress=False)  # fmt: skip
        assert whole.errors == {}
        runner = asyncio.ensure_future(
            nb_mistral.amap("{item}", [f"item {n}" for n in range(30)], client=client,
                            model=MODEL, concurrency=4, max_tokens=8, progress=False)
        )  # fmt: skip
        await asyncio.sleep(0.6)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        return whole, asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    _, left = asyncio.run(main())
    assert left == set()
    assert emu.wait_for_disconnect(timeout=5, n=1)


def test_cache_replays_finished_items_and_sends_only_the_rest(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    cache = MemoryCache()
    first = nb_mistral.map("{item}", ["a", "b", "c"], client=client, model=MODEL,
                           max_tokens=SHORT, cache=cache, progress=False)  # fmt: skip
    sent = len(chat_requests(emulator))
    again = nb_mistral.map("{item}", ["a", "b", "c", "d"], client=client, model=MODEL,
                           max_tokens=SHORT, cache=cache, progress=False)  # fmt: skip
    assert again.replayed == 3
    assert len(chat_requests(emulator)) == sent + 1
    assert again.texts[:3] == first.texts and again.texts[3] == expected_text("d")


def test_text_progress_outside_a_notebook(emulator: Emulator, capsys: Any) -> None:
    client = Mistral(server_url=emulator.url)
    nb_mistral.map("{item}", ["a", "b"], client=client, model=MODEL, max_tokens=8)
    err = capsys.readouterr().err
    assert "2/2 done · 0 failed" in err and "Emulated" not in err


def test_a_broken_input_ends_the_batch_with_its_error(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)

    def rows() -> Any:
        yield "fine"
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        nb_mistral.map("{item}", rows(), client=client, model=MODEL, max_tokens=8,
                       progress=False)  # fmt: skip


def test_the_reply_store_resumes_a_batch(emulator: Emulator, tmp_path: Any) -> None:
    from nb_mistral._batch._stored import StoreCache
    from nb_mistral.store import CacheMiss, open_store

    store = open_store(tmp_path / "replies.sqlite3", shared=False)
    client = Mistral(server_url=emulator.url)

    def cache(mode: str) -> StoreCache:
        return StoreCache(client.server_url, mode, store=store)

    first = nb_mistral.map("{item}", ["a", "b"], client=client, model=MODEL, max_tokens=SHORT,
                           cache=cache("replay"), progress=False)  # fmt: skip
    sent = len(chat_requests(emulator))
    again = nb_mistral.map("{item}", ["a", "b", "c"], client=client, model=MODEL,
                           max_tokens=SHORT, cache=cache("replay"), progress=False)  # fmt: skip
    assert again.replayed == 2 and len(chat_requests(emulator)) == sent + 1
    assert again.texts == [*first.texts, expected_text("c")]
    assert [r.tokens for r in again] == [r.tokens for r in first] + [SHORT]
    only = nb_mistral.map("{item}", ["c", "d"], client=client, model=MODEL, max_tokens=SHORT,
                          cache=cache("only"), progress=False)  # fmt: skip
    assert only.texts[0] == expected_text("c") and isinstance(only.errors[1], CacheMiss)
    assert len(chat_requests(emulator)) == sent + 1  # "only" never sends
    store.close()


def test_a_stop_before_the_first_request_still_ends_the_batch(emulator: Emulator) -> None:
    client = Mistral(server_url=emulator.url)
    for _ in range(5):
        batch = nb_mistral.map("{item}", range(50), client=client, model=MODEL, max_tokens=8,
                               wait=False, progress=False)  # fmt: skip
        assert isinstance(batch, Batch)
        batch.stop()
        assert batch.wait(10) and batch.done
    wait_until(lambda: not batch_threads())
