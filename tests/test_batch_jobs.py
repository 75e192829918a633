"""``backend="batch"``: Mistral's Batch API (files, jobs, results) against the emulator."""

from __future__ import annotations

import _thread
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import nb_mistral
from nb_mistral import APIError, Batch, BatchJob, Mistral
from nb_mistral._batch import JobStatus
from nb_mistral.emulator import OUTCOME_KEY, Emulator, build_reply

MODEL = "mistral-small-latest"
SHORT = 16
Factory = Callable[..., Emulator]


def expected_text(prompt: str, model: str = MODEL) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": SHORT}
    return "".join(build_reply(body).content)


def paths(emu: Emulator, method: str, prefix: str) -> list[Any]:
    return [r for r in emu.requests if r.method == method and r.path.startswith(prefix)]


def run_job(emu: Emulator, items: Any, **kwargs: Any) -> Any:
    client = Mistral(server_url=emu.url)
    return nb_mistral.map("{item}", items, client=client, model=MODEL, backend="batch",
                          max_tokens=SHORT, progress=False, **kwargs)  # fmt: skip


def test_ten_thousand_items_go_through_an_uploaded_file(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=0.5)
    prompts = [f"item {n}" for n in range(10_000)]
    batch = run_job(emu, prompts)
    assert isinstance(batch, Batch) and batch.done and batch.error is None
    assert len(batch) == 10_000 and batch.errors == {}
    assert len(paths(emu, "POST", "/v1/files")) == 1
    (create,) = paths(emu, "POST", "/v1/batch/jobs")
    assert create.json["endpoint"] == "/v1/chat/completions" and create.json["model"] == MODEL
    assert len(create.json["input_files"]) == 1 and "requests" not in create.json
    for n in range(0, 10_000, 97):
        assert batch.texts[n] == expected_text(prompts[n])
    assert all(f"> item {n}\n" in text for n, text in enumerate(batch.texts))
    assert batch.usage["completion_tokens"] == 10_000 * SHORT
    polls = paths(emu, "GET", "/v1/batch/jobs/")
    assert 2 <= len(polls) <= 12  # the polling backs off


def test_a_hundred_items_go_inline_in_input_order(emulator_factory: Factory) -> None:
    pd = pytest.importorskip("pandas")
    emu = emulator_factory(batch_seconds=0.3)
    series = pd.Series([f"item {n}" for n in range(100)], index=[f"k{n}" for n in range(100)])
    batch = run_job(emu, series, metadata={"purpose": "test"})
    assert paths(emu, "POST", "/v1/files") == []
    (create,) = paths(emu, "POST", "/v1/batch/jobs")
    assert [line["custom_id"] for line in create.json["requests"]] == [str(n) for n in range(100)]
    assert create.json["metadata"] == {"purpose": "test"}
    assert "model" not in create.json["requests"][0]["body"]
    assert batch.texts == [expected_text(p) for p in series]
    result = batch.to_pandas()
    assert list(result.index) == list(series.index)


def test_error_file_items_are_reported_per_item_after_reattaching(
    emulator_factory: Factory,
) -> None:
    """A job made elsewhere (one line names an unknown model): the error file's lines land on
    their items, by ``custom_id``, and the rest keep their answers."""
    emu = emulator_factory(batch_seconds=0.2)
    lines = []
    for n in range(6):
        body: dict[str, Any] = {"max_tokens": SHORT,
                                "messages": [{"role": "user", "content": f"item {n}"}]}  # fmt: skip
        if n in (2, 4):
            body["model"] = "no-such-model"
        lines.append(json.dumps({"custom_id": str(n), "body": body}).encode())
    with httpx.Client(base_url=emu.url) as http:
        stored = http.post(
            "/v1/files", files={"file": ("in.jsonl", b"\n".join(lines) + b"\n")},
            data={"purpose": "batch"},
        ).json()  # fmt: skip
        job_json = http.post("/v1/batch/jobs", json={
            "input_files": [stored["id"]], "endpoint": "/v1/chat/completions", "model": MODEL,
        }).json()  # fmt: skip
    job = nb_mistral.batch_job(job_json["id"], client=Mistral(server_url=emu.url))
    assert isinstance(job, BatchJob) and job.id == job_json["id"]
    batch = job.wait(progress=False)
    assert set(batch.errors) == {2, 4}
    assert all(isinstance(e, APIError) and e.status_code == 400 for e in batch.errors.values())
    assert [batch.texts[n] for n in (0, 1, 3, 5)] == [
        expected_text(f"item {n}") for n in (0, 1, 3, 5)
    ]
    assert batch.failed == 2 and batch.finished == 4


@pytest.mark.parametrize("outcome", ["FAILED", "TIMEOUT_EXCEEDED"])
def test_a_job_that_ends_early_returns_what_finished_and_reports_the_rest(
    emulator_factory: Factory, outcome: str
) -> None:
    emu = emulator_factory(batch_seconds=0.2)
    prompts = [f"item {n}" for n in range(20)]
    batch = run_job(emu, prompts, metadata={OUTCOME_KEY: outcome})
    assert batch.done and batch.error is not None and outcome in str(batch.error)
    answered = [n for n, reply in enumerate(batch) if reply.error is None]
    if outcome == "FAILED":
        assert answered == []
    else:
        assert answered == list(range(10))  # the emulator answers the first half, then stops
        assert [batch.texts[n] for n in answered] == [expected_text(prompts[n]) for n in answered]
    missing = set(range(20)) - set(answered)
    assert set(batch.errors) == missing
    assert all(f"ended {outcome}" in str(batch.errors[n]) for n in missing)


def test_wait_false_returns_a_handle_and_cancel_goes_through_cancellation(
    emulator_factory: Factory,
) -> None:
    emu = emulator_factory(batch_seconds=4)
    job = run_job(emu, [f"item {n}" for n in range(10)], wait=False)
    assert isinstance(job, BatchJob)
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert job.cancel() is JobStatus.CANCELLATION_REQUESTED
    batch = job.wait(progress=False)
    assert job.status is JobStatus.CANCELLED
    assert batch.done and batch.stopped + batch.finished == 10 and batch.stopped > 0
    assert job.results() is batch


def test_reattach_by_id_from_a_new_process(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=0.5)
    prompts = [f"item {n}" for n in range(30)]
    job = run_job(emu, prompts, wait=False)
    code = (
        "import json, sys, nb_mistral\n"
        "client = nb_mistral.Mistral(server_url=sys.argv[2])\n"
        "job = nb_mistral.batch_job(sys.argv[1], client=client)\n"
        "print(json.dumps(job.wait(progress=False).texts))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, job.id, emu.url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout) == [expected_text(p) for p in prompts]


@pytest.mark.parametrize("cancel_on_stop", [True, False])
def test_interrupt_while_waiting(emulator_factory: Factory, cancel_on_stop: bool) -> None:
    emu = emulator_factory(batch_seconds=6)
    job = run_job(emu, ["a", "b"], wait=False)
    polled = len(paths(emu, "GET", "/v1/batch/jobs/"))

    def interrupt_soon() -> None:
        deadline = time.monotonic() + 10
        while len(paths(emu, "GET", "/v1/batch/jobs/")) <= polled + 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon, daemon=True).start()
    with pytest.raises(KeyboardInterrupt) as caught:
        job.wait(progress=False, cancel_on_stop=cancel_on_stop)
    cancels = paths(emu, "POST", f"/v1/batch/jobs/{job.id}/cancel")
    if cancel_on_stop:
        assert len(cancels) == 1 and "cancelled" in str(caught.value)
    else:
        assert cancels == [] and f"nb_mistral.batch_job('{job.id}')" in str(caught.value)
        assert job.refresh() in (JobStatus.QUEUED, JobStatus.RUNNING)


def test_results_are_held_compactly_and_become_replies_when_asked() -> None:
    from nb_mistral._batch._items import Items
    from nb_mistral._batch._jsonl import apply_results, finish_missing
    from nb_mistral._batch._settled import Settled

    batch = Batch(Items((), 3), model=MODEL)
    for position in range(3):
        batch._add(position, None)
    thinking = {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]}
    message = {"role": "assistant", "content": [thinking, {"type": "text", "text": "42"}]}
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    lines = [
        {"custom_id": "1", "response": {"status_code": 200, "body": {
            "id": "x", "model": MODEL, "usage": usage, "choices": [
                {"index": 0, "message": message, "finish_reason": "stop"}]}}},
        json.dumps({"custom_id": "0", "response": {"status_code": 200, "body": {
            "id": "y", "model": MODEL, "choices": [{"index": 0, "message": {
                "role": "assistant", "content": "", "tool_calls": [call]},
                "finish_reason": "tool_calls"}]}}}).encode(),
        b"not json",
        {"custom_id": "7"},  # no such item
    ]  # fmt: skip
    assert apply_results(batch, lines) == 2
    finish_missing(batch, "no result: gone")
    assert all(isinstance(entry, Settled) for entry in batch._replies)
    assert batch.texts == ["", "42", ""] and set(batch.errors) == {2}
    assert batch.usage["completion_tokens"] == 2
    assert batch.finished == 2 and batch.failed == 1
    answer = batch[1]
    assert answer is batch[1]  # made once, then kept
    assert (answer.text, answer.thinking, answer.finish_reason) == ("42", "hmm", "stop")
    assert answer.usage.completion_tokens == 2 and answer.done and answer.error is None
    assert [c.function.name for c in batch[0].tool_calls] == ["f"]
    assert str(batch[2].error) == "no result: gone"
