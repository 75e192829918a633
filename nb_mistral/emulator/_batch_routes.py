"""``/v1/files`` and ``/v1/batch/jobs``: the Files and Batch APIs in their official shapes."""

from __future__ import annotations

from typing import Any

from . import _wire
from ._batch import BatchJob
from ._files import StoredFile, read_chunks
from ._server import EmulatorHandler
from ._validation import CreateBatchJob, missing, validate

INLINE_LIMIT = 10_000  # the real API takes at most this many inline requests
PURPOSES = ("fine-tune", "batch", "ocr")


class FilesHandler(EmulatorHandler):
    """``POST /v1/files`` (multipart upload) and ``GET /v1/files`` (list)."""

    ALLOWED = ("GET", "POST")
    RECORD_BODY = False

    def post(self) -> None:
        uploads = self.request.files.get("file")
        purpose = self.get_body_argument("purpose", "fine-tune")
        if not uploads:
            fields = self.request.body_arguments.items()
            form = {name: values[0].decode("utf-8", "replace") for name, values in fields}
            self.send_json(422, _wire.validation_error([missing("file", form)]))
            return
        if purpose not in PURPOSES:
            self.send_json(422, _wire.validation_error([_bad_purpose(purpose)]))
            return
        upload = uploads[0]
        stored = self.state.files.add(upload.filename or "upload.jsonl", upload.body, purpose)
        self.send_json(200, stored.to_json())

    def get(self) -> None:
        files = self.state.files.all()
        purpose = self.get_query_argument("purpose", None)
        if purpose:
            files = [f for f in files if f.purpose == purpose]
        page, size = _page(self)
        data = [f.to_json() for f in files[page * size : (page + 1) * size]]
        self.send_json(200, {"data": data, "object": "list", "total": len(files)})


class FileHandler(EmulatorHandler):
    """``GET`` and ``DELETE /v1/files/{id}``."""

    ALLOWED: tuple[str, ...] = ("GET", "DELETE")

    def get(self, file_id: str) -> None:
        stored = self._stored(file_id)
        if stored is not None:
            self.send_json(200, stored.to_json())

    def delete(self, file_id: str) -> None:
        if self._stored(file_id) is not None:
            self.state.files.delete(file_id)
            self.send_json(200, {"id": file_id, "object": "file", "deleted": True})

    def _stored(self, file_id: str) -> StoredFile | None:
        stored = self.state.files.get(file_id)
        if stored is None:
            self.send_json(404, {"detail": f"File {file_id} not found"})
        return stored


class FileContentHandler(FileHandler):
    """``GET /v1/files/{id}/content``: the bytes, streamed from disk."""

    ALLOWED: tuple[str, ...] = ("GET",)

    async def get(self, file_id: str) -> None:  # type: ignore[override]
        stored = self._stored(file_id)
        if stored is None:
            return
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(stored.size))
        self.set_header("Content-Disposition", f'attachment; filename="{stored.filename}"')
        for chunk in read_chunks(stored.path):
            self.write(chunk)
            await self.flush()
        self.finish()


class JobsHandler(EmulatorHandler):
    """``POST /v1/batch/jobs`` (create) and ``GET /v1/batch/jobs`` (list)."""

    ALLOWED = ("GET", "POST")

    def post(self) -> None:
        body, problems = validate(CreateBatchJob, self.request.body)
        if problems:
            self.send_json(422, _wire.validation_error(problems))
            return
        refusal = self._refusal(body)
        if refusal is not None:
            status, error = refusal
            self.send_json(status, error)
            return
        job = self.state.jobs.create(
            endpoint=body["endpoint"],
            model=body.get("model"),
            metadata=body.get("metadata"),
            input_files=list(body.get("input_files") or []),
            requests=body.get("requests"),
            timeout_hours=body.get("timeout_hours", 24),
        )
        self.send_json(200, job.to_json())

    def get(self) -> None:
        jobs = self.state.jobs.all()
        statuses = self.get_query_arguments("status")
        if statuses:
            jobs = [j for j in jobs if j.status.value in statuses]
        model = self.get_query_argument("model", None)
        if model:
            jobs = [j for j in jobs if j.model == model]
        page, size = _page(self)
        data = [j.to_json() for j in jobs[page * size : (page + 1) * size]]
        self.send_json(200, {"data": data, "object": "list", "total": len(jobs)})

    def _refusal(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """Why the job cannot be created, as (status, body); None when it can."""
        if body["endpoint"] != "/v1/chat/completions":
            return 400, _wire.api_error("The emulator runs batch jobs on /v1/chat/completions only")
        files, requests = body.get("input_files"), body.get("requests")
        if not files and not requests:
            return 400, _wire.api_error("Either input_files or requests must be given")
        if requests is not None and len(requests) > INLINE_LIMIT:
            return 400, _wire.api_error(f"At most {INLINE_LIMIT} inline requests are allowed")
        for file_id in files or []:
            if self.state.files.get(file_id) is None:
                return 404, {"detail": f"File {file_id} not found"}
        model = body.get("model")
        if model is not None and not _wire.is_known_model(model):
            return 400, _wire.invalid_model(model)
        return None


class JobHandler(EmulatorHandler):
    """``GET /v1/batch/jobs/{id}`` (``?inline=true`` adds ``outputs``)."""

    ALLOWED: tuple[str, ...] = ("GET",)

    def get(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        obj = job.to_json()
        inline = self.get_query_argument("inline", None)
        wanted = inline == "true" if inline is not None else job.inline_path is not None
        if wanted and job.status.terminal:
            obj["outputs"] = self.state.jobs.outputs(job)
        self.send_json(200, obj)

    def _job(self, job_id: str) -> BatchJob | None:
        job = self.state.jobs.get(job_id)
        if job is None:
            self.send_json(404, {"detail": f"Batch job {job_id} not found"})
        return job


class CancelHandler(JobHandler):
    """``POST /v1/batch/jobs/{id}/cancel``."""

    ALLOWED = ("POST",)

    def post(self, job_id: str) -> None:
        if self._job(job_id) is not None:
            job = self.state.jobs.cancel(job_id)
            assert job is not None
            self.send_json(200, job.to_json())


def _page(handler: EmulatorHandler) -> tuple[int, int]:
    try:
        page = max(0, int(handler.get_query_argument("page", "0") or 0))
        size = max(1, int(handler.get_query_argument("page_size", "100") or 100))
    except ValueError:
        return 0, 100
    return page, size


def _bad_purpose(purpose: str) -> dict[str, Any]:
    expected = ", ".join(f"'{p}'" for p in PURPOSES)
    return {
        "type": "enum",
        "loc": ["body", "purpose"],
        "msg": f"Input should be {expected}",
        "input": purpose,
        "ctx": {"expected": expected},
    }
