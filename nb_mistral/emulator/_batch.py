"""Batch jobs, offline: the official statuses over a configurable time, files in, files out.

A job waits in ``QUEUED``, then ``RUNNING`` answers its requests one line at a time, streaming
from the input files to the output and error files on disk (a 10,000-line job holds one line
in memory, not 10,000), spread over ``batch_seconds``. Tests force a terminal status with the
metadata key ``OUTCOME_KEY`` (``FAILED`` or ``TIMEOUT_EXCEEDED``) or by cancelling.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from . import _wire
from ._files import FileStore, LineWriter, SampleType, StoredFile, read_lines
from ._replies import build_reply
from ._validation import BatchRequestLine, ChatRequest, check, parse_json

OUTCOME_KEY = "nb_mistral_emulator_outcome"
QUEUED_SHARE = 0.1  # of batch_seconds spent QUEUED; the rest is RUNNING
CANCEL_DELAY = 0.5  # at most this long in CANCELLATION_REQUESTED
YIELD_EVERY = 100  # lines between yields to the loop when running as fast as possible


class BatchStatus(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEOUT_EXCEEDED = "TIMEOUT_EXCEEDED"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = {
    BatchStatus.SUCCESS,
    BatchStatus.FAILED,
    BatchStatus.TIMEOUT_EXCEEDED,
    BatchStatus.CANCELLED,
}


@dataclass
class BatchJob:
    """One job's state; changed only by ``BatchJobs`` and its runner."""

    id: str
    endpoint: str
    model: str | None
    metadata: dict[str, str] | None
    input_files: list[str]
    inline_path: Path | None
    timeout_hours: int
    created_at: int
    status: BatchStatus = BatchStatus.QUEUED
    total_requests: int = 0
    completed_requests: int = 0
    succeeded_requests: int = 0
    failed_requests: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file: str | None = None
    error_file: str | None = None
    started_at: int | None = None
    completed_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``BatchJob`` object of the official API (``outputs`` added by the route)."""
        return {
            "id": self.id,
            "object": "batch",
            "input_files": self.input_files,
            "metadata": self.metadata,
            "endpoint": self.endpoint,
            "model": self.model,
            "agent_id": None,
            "output_file": self.output_file,
            "error_file": self.error_file,
            "errors": self.errors,
            "status": self.status.value,
            "created_at": self.created_at,
            "total_requests": self.total_requests,
            "completed_requests": self.completed_requests,
            "succeeded_requests": self.succeeded_requests,
            "failed_requests": self.failed_requests,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


class BatchJobs:
    """The jobs of one emulator, each run by a task on the server's loop."""

    def __init__(self, files: FileStore, seconds: Callable[[], float]) -> None:
        self._files = files
        self._seconds = seconds
        self._jobs: dict[str, BatchJob] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: dict[str, asyncio.Event] = {}

    def create(
        self,
        endpoint: str,
        model: str | None,
        metadata: dict[str, str] | None,
        input_files: list[str],
        requests: list[dict[str, Any]] | None,
        timeout_hours: int,
    ) -> BatchJob:
        job_id = str(uuid.uuid4())
        inline_path = None
        if requests is not None:
            inline_path = self._files.directory / f"inline-{job_id}"
            with open(inline_path, "wb") as out:
                for request in requests:
                    out.write(_wire.dumps(request) + b"\n")
        job = BatchJob(
            job_id, endpoint, model, metadata, input_files, inline_path, timeout_hours,
            int(time.time()),
        )  # fmt: skip
        self._jobs[job_id] = job
        self._cancelled[job_id] = asyncio.Event()
        self._tasks[job_id] = asyncio.ensure_future(self._run(job))
        return job

    def get(self, job_id: str) -> BatchJob | None:
        return self._jobs.get(job_id)

    def all(self) -> list[BatchJob]:
        """Newest first."""
        return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def cancel(self, job_id: str) -> BatchJob | None:
        """Ask a job to stop; it goes through ``CANCELLATION_REQUESTED`` to ``CANCELLED``."""
        job = self._jobs.get(job_id)
        if job is not None and not job.status.terminal:
            job.status = BatchStatus.CANCELLATION_REQUESTED
            self._cancelled[job_id].set()
        return job

    def outputs(self, job: BatchJob) -> list[Any]:
        """Every output and error line of a job, for ``?inline=true``."""
        lines: list[Any] = []
        for file_id in (job.output_file, job.error_file):
            stored = self._files.get(file_id) if file_id else None
            if stored is not None:
                lines += [parse_json(line)[0] for line in read_lines(stored.path)]
        return lines

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the runner --------------------------------------------------------------------------

    async def _run(self, job: BatchJob) -> None:
        cancelled = self._cancelled[job.id]
        seconds = max(0.0, self._seconds())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(cancelled.wait(), seconds * QUEUED_SHARE)
        if cancelled.is_set():
            await self._finish_cancel(job, seconds)
            return
        inputs = self._input_paths(job)
        if inputs is None:
            return
        job.status = BatchStatus.RUNNING
        job.started_at = int(time.time())
        job.total_requests = sum(1 for _ in _lines(inputs))
        outcome = (job.metadata or {}).get(OUTCOME_KEY)
        if outcome == BatchStatus.FAILED.value:
            self._fail(job, "Emulated failure (metadata requested FAILED)")
            return
        limit = job.total_requests
        if outcome == BatchStatus.TIMEOUT_EXCEEDED.value:
            limit = job.total_requests // 2
        output = self._files.writer(f"{job.id}_output.jsonl", SampleType.BATCH_RESULT)
        errors = self._files.writer(f"{job.id}_error.jsonl", SampleType.BATCH_ERROR)
        try:
            await self._answer(job, inputs, limit, seconds * (1 - QUEUED_SHARE), output, errors)
        except BaseException:
            output.discard()
            errors.discard()
            raise
        job.output_file = _id_of(output.close())
        job.error_file = _id_of(errors.close())
        if cancelled.is_set():
            await self._finish_cancel(job, seconds)
        else:
            timed_out = limit < job.total_requests
            job.status = BatchStatus.TIMEOUT_EXCEEDED if timed_out else BatchStatus.SUCCESS
            job.completed_at = int(time.time())

    async def _answer(
        self,
        job: BatchJob,
        inputs: list[Path],
        limit: int,
        run_time: float,
        output: LineWriter,
        errors: LineWriter,
    ) -> None:
        """Answer up to ``limit`` lines, spread evenly over ``run_time``."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = max(1, job.total_requests)
        for index, line in enumerate(_lines(inputs)):
            if index >= limit or self._cancelled[job.id].is_set():
                break
            record, ok = answer_line(line, index, job.model)
            (output if ok else errors).write(record)
            job.completed_requests += 1
            job.succeeded_requests += ok
            job.failed_requests += not ok
            delay = start + run_time * (index + 1) / total - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif index % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def _input_paths(self, job: BatchJob) -> list[Path] | None:
        paths = [job.inline_path] if job.inline_path is not None else []
        for file_id in job.input_files:
            stored = self._files.get(file_id)
            if stored is None:
                self._fail(job, f"Input file {file_id} not found")
                return None
            paths.append(stored.path)
        return paths

    def _fail(self, job: BatchJob, message: str) -> None:
        job.errors = [{"message": message, "count": 1}]
        job.status = BatchStatus.FAILED
        job.completed_at = int(time.time())

    async def _finish_cancel(self, job: BatchJob, seconds: float) -> None:
        await asyncio.sleep(min(CANCEL_DELAY, seconds * QUEUED_SHARE))
        job.status = BatchStatus.CANCELLED
        job.completed_at = int(time.time())


def answer_line(line: bytes, index: int, job_model: str | None) -> tuple[dict[str, Any], bool]:
    """One output or error line (``id``, ``custom_id``, ``response``, ``error``) and whether
    the request succeeded. A body's own ``model`` wins over the job's."""
    request, problems = parse_json(line)
    custom_id = request.get("custom_id") if isinstance(request, dict) else None
    if not problems:
        problems = check(BatchRequestLine, request)
    if problems:
        return _error_line(custom_id, 422, _wire.validation_error(problems), "Invalid request")
    body = dict(request["body"])
    if job_model is not None:
        body.setdefault("model", job_model)
    problems = check(ChatRequest, body)
    if problems:
        return _error_line(custom_id, 422, _wire.validation_error(problems), "Invalid request")
    if not _wire.is_known_model(body["model"]):
        invalid = _wire.invalid_model(body["model"])
        return _error_line(custom_id, 400, invalid, invalid["message"])
    completion = _wire.completion(_wire.new_id(), _wire.now(), body["model"], build_reply(body))
    line_id = f"batch-{index}-{uuid.uuid4().hex[:12]}"
    record = {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": 200, "body": completion},
        "error": None,
    }
    return record, True


def _error_line(
    custom_id: Any, status: int, body: dict[str, Any], message: str
) -> tuple[dict[str, Any], bool]:
    record = {
        "id": f"batch-error-{uuid.uuid4().hex[:12]}",
        "custom_id": custom_id,
        "response": {"status_code": status, "body": body},
        "error": {"message": message, "code": status},
    }
    return record, False


def _lines(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        yield from read_lines(path)


def _id_of(stored: StoredFile | None) -> str | None:
    return stored.id if stored is not None else None
