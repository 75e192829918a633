"""The Files and Batch APIs of the emulator, over loopback with httpx, in the official shapes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nb_mistral.emulator import OUTCOME_KEY, Emulator, build_reply

Factory = Callable[..., Emulator]
CHAT_ENDPOINT = "/v1/chat/completions"
TERMINAL = {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}
JOB_FIELDS = {
    "id", "object", "input_files", "metadata", "endpoint", "model", "agent_id", "output_file",
    "error_file", "errors", "status", "created_at", "total_requests", "completed_requests",
    "succeeded_requests", "failed_requests", "started_at", "completed_at",
}  # fmt: skip


def request_line(index: int, model: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "max_tokens": 5,
        "messages": [{"role": "user", "content": f"item {index}"}],
    }
    if model is not None:
        body["model"] = model
    return {"custom_id": str(index), "body": body}


def jsonl(lines: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(client: httpx.Client, data: bytes, name: str = "batch.jsonl") -> dict[str, Any]:
    response = client.post(
        "/v1/files",
        files={"file": (name, data, "application/jsonl")},
        data={"purpose": "batch"},
    )
    assert response.status_code == 200, response.text
    stored: dict[str, Any] = response.json()
    return stored


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    payload = {"endpoint": CHAT_ENDPOINT, "model": "mistral-small-latest", **fields}
    response = client.post("/v1/batch/jobs", json=payload)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait(
    client: httpx.Client, job_id: str, timeout: float = 30
) -> tuple[dict[str, Any], list[str]]:
    """Poll until terminal; returns the last job and every status seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/batch/jobs/{job_id}").json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in TERMINAL:
            return job, seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.02)


def content(client: httpx.Client, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    response = client.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(line) for line in response.content.splitlines()]


def expected_text(index: int) -> str:
    line = request_line(index, "mistral-small-latest")
    return build_reply(line["body"]).text


# -- files ----------------------------------------------------------------------------


def test_file_upload_get_content_list_delete(emulator: Emulator) -> None:
    data = jsonl([request_line(i) for i in range(3)])
    with httpx.Client(base_url=emulator.url) as client:
        stored = upload(client, data, "three.jsonl")
        assert uuid.UUID(stored["id"])
        assert stored["object"] == "file" and stored["bytes"] == len(data)
        assert stored["filename"] == "three.jsonl" and stored["purpose"] == "batch"
        assert stored["sample_type"] == "batch_request" and stored["source"] == "upload"
        assert stored["num_lines"] == 3 and isinstance(stored["created_at"], int)
        assert client.get(f"/v1/files/{stored['id']}").json() == stored
        assert client.get(f"/v1/files/{stored['id']}/content").content == data
        listing = client.get("/v1/files", params={"purpose": "batch"}).json()
        assert listing["object"] == "list" and listing["total"] == 1
        assert listing["data"] == [stored]
        deleted = client.delete(f"/v1/files/{stored['id']}")
        assert deleted.json() == {"id": stored["id"], "object": "file", "deleted": True}
        assert client.get(f"/v1/files/{stored['id']}").status_code == 404
        assert client.get(f"/v1/files/{stored['id']}/content").status_code == 404
        assert client.get("/v1/files").json()["total"] == 0
    upload_request = next(r for r in emulator.requests if r.method == "POST")
    assert upload_request.body == b""  # contents stay in the file store, not in the log


def test_upload_without_a_file_is_422(emulator: Emulator) -> None:
    response = httpx.post(emulator.url + "/v1/files", data={"purpose": "batch"})
    assert response.status_code == 422
    (detail,) = response.json()["message"]["detail"]
    assert detail["type"] == "missing" and detail["loc"] == ["body", "file"]


def test_files_need_the_key_when_one_is_set(emulator_factory: Factory) -> None:
    emu = emulator_factory(api_key="sk-right")
    assert httpx.get(emu.url + "/v1/files").status_code == 401
    assert httpx.get(emu.url + "/v1/batch/jobs").status_code == 401
    good = {"authorization": "Bearer sk-right"}
    assert httpx.get(emu.url + "/v1/files", headers=good).status_code == 200


# -- jobs -----------------------------------------------------------------------------


def test_file_job_goes_queued_running_success(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=1.0)
    lines = [request_line(i) for i in range(20)]
    lines.insert(7, request_line(99, model="mistral-gigantic-latest"))
    with httpx.Client(base_url=emu.url) as client:
        stored = upload(client, jsonl(lines))
        job = create(client, input_files=[stored["id"]], metadata={"job_type": "testing"})
        assert set(job) == JOB_FIELDS
        assert job["object"] == "batch" and job["status"] == "QUEUED"
        assert job["input_files"] == [stored["id"]] and job["metadata"] == {"job_type": "testing"}
        assert job["endpoint"] == CHAT_ENDPOINT and job["output_file"] is None
        done, seen = wait(client, job["id"])
        assert seen == ["QUEUED", "RUNNING", "SUCCESS"]
        assert (done["total_requests"], done["completed_requests"]) == (21, 21)
        assert (done["succeeded_requests"], done["failed_requests"]) == (20, 1)
        assert done["started_at"] >= done["created_at"] and done["completed_at"]
        outputs = content(client, done["output_file"])
        errors = content(client, done["error_file"])
        output_file = client.get(f"/v1/files/{done['output_file']}").json()
        assert output_file["sample_type"] == "batch_result" and output_file["num_lines"] == 20
    assert [o["custom_id"] for o in outputs] == [str(i) for i in range(20)]
    for output in outputs:
        assert set(output) == {"id", "custom_id", "response", "error"}
        assert output["error"] is None and output["response"]["status_code"] == 200
        completion = output["response"]["body"]
        assert completion["object"] == "chat.completion"
        text = completion["choices"][0]["message"]["content"]
        assert text == expected_text(int(output["custom_id"]))
    (error,) = errors
    assert error["custom_id"] == "99"
    assert error["response"] == {
        "status_code": 400,
        "body": {
            "object": "error",
            "message": "Invalid model: mistral-gigantic-latest",
            "type": "invalid_model",
            "param": None,
            "code": "1500",
        },
    }
    assert error["error"]["message"] == "Invalid model: mistral-gigantic-latest"


def test_progress_counters_grow_while_running(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=1.5)
    with httpx.Client(base_url=emu.url) as client:
        stored = upload(client, jsonl([request_line(i) for i in range(50)]))
        job = create(client, input_files=[stored["id"]])
        counts = []
        while (now := client.get(f"/v1/batch/jobs/{job['id']}").json())["status"] not in TERMINAL:
            if now["status"] == "RUNNING":
                assert now["total_requests"] == 50
                counts.append(now["completed_requests"])
            time.sleep(0.05)
    assert counts == sorted(counts)
    assert len(set(counts)) >= 3, counts  # seen part way, more than once
    assert 0 < counts[len(counts) // 2] < 50


def test_inline_requests_give_outputs(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=0)
    with httpx.Client(base_url=emu.url) as client:
        job = create(client, requests=[request_line(i) for i in range(100)])
        assert job["input_files"] == []
        done, _ = wait(client, job["id"])
        assert done["status"] == "SUCCESS" and done["succeeded_requests"] == 100
        texts = {
            o["custom_id"]: o["response"]["body"]["choices"][0]["message"]["content"]
            for o in done["outputs"]
        }
        assert texts == {str(i): expected_text(i) for i in range(100)}
        plain = client.get(f"/v1/batch/jobs/{job['id']}", params={"inline": "false"}).json()
        assert "outputs" not in plain
        assert len(content(client, done["output_file"])) == 100


def test_forced_failure(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=0.2)
    with httpx.Client(base_url=emu.url) as client:
        job = create(client, requests=[request_line(1)], metadata={OUTCOME_KEY: "FAILED"})
        done, seen = wait(client, job["id"])
    assert seen[-1] == "FAILED"
    assert done["errors"] and done["errors"][0]["message"] and done["errors"][0]["count"] == 1
    assert done["output_file"] is None and done["succeeded_requests"] == 0


def test_timeout_exceeded_keeps_partial_output(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=0.2)
    with httpx.Client(base_url=emu.url) as client:
        stored = upload(client, jsonl([request_line(i) for i in range(10)]))
        metadata = {OUTCOME_KEY: "TIMEOUT_EXCEEDED"}
        job = create(client, input_files=[stored["id"]], metadata=metadata)
        done, seen = wait(client, job["id"])
        outputs = content(client, done["output_file"])
    assert seen[-1] == "TIMEOUT_EXCEEDED"
    assert (done["total_requests"], done["completed_requests"]) == (10, 5)
    assert [o["custom_id"] for o in outputs] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("when", ["QUEUED", "RUNNING"])
def test_cancel_goes_through_cancellation_requested(emulator_factory: Factory, when: str) -> None:
    emu = emulator_factory(batch_seconds=4)
    with httpx.Client(base_url=emu.url) as client:
        stored = upload(client, jsonl([request_line(i) for i in range(40)]))
        job = create(client, input_files=[stored["id"]])
        while client.get(f"/v1/batch/jobs/{job['id']}").json()["status"] != when:
            time.sleep(0.02)
        if when == "RUNNING":
            time.sleep(0.5)
        cancelled = client.post(f"/v1/batch/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "CANCELLATION_REQUESTED"
        done, seen = wait(client, job["id"])
        outputs = content(client, done["output_file"])
        again = client.post(f"/v1/batch/jobs/{job['id']}/cancel").json()
    assert seen[-1] == "CANCELLED"
    assert again["status"] == "CANCELLED"
    assert done["completed_requests"] < 40
    assert len(outputs) == done["succeeded_requests"]
    if when == "QUEUED":
        assert done["completed_requests"] == 0 and done["output_file"] is None


def test_list_jobs_and_unknown_ids(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=0)
    with httpx.Client(base_url=emu.url) as client:
        ids = [create(client, requests=[request_line(i)])["id"] for i in range(3)]
        for job_id in ids:
            wait(client, job_id)
        listing = client.get("/v1/batch/jobs").json()
        assert listing["object"] == "list" and listing["total"] == 3
        assert {j["id"] for j in listing["data"]} == set(ids)
        assert client.get("/v1/batch/jobs", params={"status": "RUNNING"}).json()["total"] == 0
        assert client.get(f"/v1/batch/jobs/{uuid.uuid4()}").status_code == 404
        assert client.post(f"/v1/batch/jobs/{uuid.uuid4()}/cancel").status_code == 404


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"endpoint": "/v1/nothing", "requests": [request_line(0)]}, 422),
        ({"model": "mistral-gigantic-latest", "requests": [request_line(0)]}, 400),
        ({}, 400),
        ({"input_files": [str(uuid.uuid4())]}, 404),
        ({"requests": [request_line(0)] * 10_001}, 400),
        ({"requests": [{"custom_id": "x"}]}, 422),
    ],
)
def test_bad_job_requests(emulator: Emulator, fields: dict[str, Any], status: int) -> None:
    payload = {"endpoint": CHAT_ENDPOINT, "model": "mistral-small-latest", **fields}
    response = httpx.post(emulator.url + "/v1/batch/jobs", json=payload, timeout=30)
    assert response.status_code == status, response.text
    assert httpx.get(emulator.url + "/v1/batch/jobs").json()["total"] == 0


def test_ten_thousand_lines_round_trip(emulator_factory: Factory) -> None:
    emu = emulator_factory(batch_seconds=0)
    count = 10_000
    data = jsonl(request_line(i) for i in range(count))
    with httpx.Client(base_url=emu.url, timeout=60) as client:
        # baseline: the same number of completions one by one over HTTP would take at least
        started = time.perf_counter()
        for i in range(200):
            client.post(
                CHAT_ENDPOINT, json={**request_line(i)["body"], "model": "mistral-small-latest"}
            )
        per_request = (time.perf_counter() - started) / 200
        started = time.perf_counter()
        stored = upload(client, data)
        job = create(client, input_files=[stored["id"]])
        done, _ = wait(client, job["id"], timeout=300)
        outputs = content(client, done["output_file"])
        elapsed = time.perf_counter() - started
    assert done["status"] == "SUCCESS" and done["succeeded_requests"] == count
    assert len(outputs) == count
    assert [o["custom_id"] for o in outputs] == [str(i) for i in range(count)]
    sample = outputs[1234]["response"]["body"]["choices"][0]["message"]["content"]
    assert sample == expected_text(1234)
    # a batch job does less per item than an HTTP request per item
    assert elapsed < per_request * count, (elapsed, per_request)


def test_the_official_sdk_runs_a_batch_against_the_emulator(emulator_factory: Factory) -> None:
    """The official SDK's own models parse every answer: the shapes are the official ones."""
    sdk = pytest.importorskip("mistralai.client")
    emu = emulator_factory(batch_seconds=0.2)
    client = sdk.Mistral(api_key="sk-any", server_url=emu.url)
    data = jsonl([request_line(i) for i in range(5)])
    stored = client.files.upload(file={"file_name": "five.jsonl", "content": data}, purpose="batch")
    assert stored.num_lines == 5 and stored.sample_type == "batch_request"
    job = client.batch.jobs.create(
        input_files=[stored.id], model="mistral-small-latest", endpoint=CHAT_ENDPOINT
    )
    deadline = time.monotonic() + 30
    while job.status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.batch.jobs.get(job_id=job.id)
    assert job.status == "SUCCESS" and job.succeeded_requests == 5
    assert job.output_file is not None
    lines = client.files.download(file_id=job.output_file).read().splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == ["0", "1", "2", "3", "4"]
    assert client.batch.jobs.list().total == 1 and client.files.list().total == 2
    other = client.batch.jobs.create(
        input_files=[stored.id], model="mistral-small-latest", endpoint=CHAT_ENDPOINT
    )
    assert client.batch.jobs.cancel(job_id=other.id).status == "CANCELLATION_REQUESTED"
    assert client.files.delete(file_id=stored.id).deleted


def test_stop_ends_running_jobs_and_deletes_the_files() -> None:
    import tempfile

    def stores() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("nb_mistral-emulator-*")}

    before = stores()
    emu = Emulator(batch_seconds=60).start()
    with httpx.Client(base_url=emu.url) as client:
        stored = upload(client, jsonl([request_line(i) for i in range(3)]))
        create(client, input_files=[stored["id"]])
    assert len(stores() - before) == 1
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 5
    assert stores() - before == set()
