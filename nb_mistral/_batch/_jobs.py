"""The Batch API backend: the job runs on Mistral's side (at half the price), past what a
notebook should run live.

``submit`` writes the request lines to a temporary file as the items come (memory stays flat
for a million rows), then sends them inline (``requests``) under ``INLINE_LIMIT`` lines, else
uploads the file (``POST /v1/files``, ``purpose=batch``), and creates the job (``POST
/v1/batch/jobs``). ``BatchJob`` polls ``GET /v1/batch/jobs/{id}`` with a growing interval, and
once the job ends, streams its output and error files back into a ``Batch`` in input order.
"""

from __future__ import annotations

import enum
import json
import tempfile
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .._client import Mistral
from .._errors import MistralError
from ._items import Items, Prompt
from ._jsonl import apply_results, finish_missing, write_requests
from ._progress import progress_view
from ._result import Batch, ItemState

CHAT_ENDPOINT = "/v1/chat/completions"
JOBS_PATH = "/v1/batch/jobs"
FILES_PATH = "/v1/files"
INLINE_LIMIT = 10_000  # the API takes at most this many inline requests
FIRST_POLL = 0.25  # seconds; each wait grows by POLL_GROWTH up to MAX_POLL
POLL_GROWTH = 1.5
MAX_POLL = 15.0


class JobStatus(str, enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEOUT_EXCEEDED = "TIMEOUT_EXCEEDED"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (self.SUCCESS, self.FAILED, self.TIMEOUT_EXCEEDED, self.CANCELLED)


@dataclass(frozen=True)
class JobSettings:
    prompt: Prompt
    model: str
    system: str | None
    options: Mapping[str, Any]
    metadata: Mapping[str, str] | None = None


def _json(response: httpx.Response) -> Any:
    response.read()
    return response.json()


def submit(items: Items, settings: JobSettings, client: Mistral, *, progress: bool) -> BatchJob:
    """Write the requests, send them, create the job; returns its handle at once."""
    body: dict[str, Any] = {"endpoint": CHAT_ENDPOINT, "model": settings.model}
    if settings.metadata:
        body["metadata"] = dict(settings.metadata)
    with tempfile.TemporaryFile() as lines:
        count, labels = write_requests(
            items, settings.prompt, settings.system, settings.options, lines
        )
        if not count:
            raise ValueError("a batch job needs at least one item")
        lines.seek(0)
        if count < INLINE_LIMIT:
            body["requests"] = [json.loads(line) for line in lines]
        else:
            files = {"file": ("batch.jsonl", lines, "application/x-ndjson")}
            uploaded = client._send("POST", FILES_PATH, {"purpose": "batch"}, _json, files)
            body["input_files"] = [uploaded["id"]]
    info = client._send("POST", JOBS_PATH, body, _json)
    return BatchJob(client, info, count=count, labels=labels, pandas_index=items.pandas_index)


class BatchJob:
    """A job on the Batch API: ``.status``, ``.refresh()``, ``.wait()``, ``.results()``,
    ``.cancel()``. ``nb_mistral.batch_job(id)`` makes one for a job started elsewhere."""

    def __init__(
        self,
        client: Mistral,
        info: Mapping[str, Any],
        *,
        count: int | None = None,
        labels: list[Hashable] | None = None,
        pandas_index: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.id: str = str(info["id"])
        self.info: Mapping[str, Any] = info
        self._client = client
        self._count = count
        self._labels = labels
        self._pandas_index = pandas_index
        self._clock = clock
        self._sleep = sleep
        self._results: Batch | None = None

    @classmethod
    def attach(cls, job_id: str, client: Mistral) -> BatchJob:
        return cls(client, client._send("GET", f"{JOBS_PATH}/{job_id}", None, _json))

    # -- state --------------------------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        """The job's status; one this client does not know yet counts as still running."""
        try:
            return JobStatus(self.info.get("status"))
        except ValueError:
            return JobStatus.RUNNING

    @property
    def model(self) -> str:
        return str(self.info.get("model") or "")

    @property
    def label(self) -> str:
        return f"{self.model} job"

    @property
    def total(self) -> int | None:
        total = self.info.get("total_requests") or self._count or 0
        return int(total) or None

    @property
    def succeeded(self) -> int:
        return int(self.info.get("succeeded_requests") or 0)

    @property
    def failed(self) -> int:
        return int(self.info.get("failed_requests") or 0)

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed

    def line(self, elapsed: float) -> str:
        """The progress line: our counts only, never the server's free text."""
        total = self.total if self.total is not None else "?"
        shown_id = "".join(c for c in self.id[:8] if c.isascii() and (c.isalnum() or c == "-"))
        return (
            f"batch job {shown_id}: {self.status.value} · {self.succeeded}/{total} done · "
            f"{self.failed} failed · {elapsed:,.0f} s"
        )

    def refresh(self) -> JobStatus:
        """Fetch the job's state from the server."""
        self.info = self._client._send("GET", f"{JOBS_PATH}/{self.id}", None, _json)
        return self.status

    def cancel(self) -> JobStatus:
        """Ask the server to cancel; the job goes through ``CANCELLATION_REQUESTED``."""
        self.info = self._client._send("POST", f"{JOBS_PATH}/{self.id}/cancel", None, _json)
        return self.status

    # -- waiting and results ----------------------------------------------------------------

    def wait(
        self,
        timeout: float | None = None,
        *,
        progress: bool = True,
        cancel_on_stop: bool = False,
    ) -> Batch:
        """Poll until the job ends, then return its results. An interrupt cancels the job with
        ``cancel_on_stop``; else the job runs on and the message says how to re-attach."""
        view = progress_view(self, progress)
        deadline = None if timeout is None else self._clock() + timeout
        interval = FIRST_POLL
        try:
            while not self.refresh().terminal:
                if view is not None:
                    view.update()
                if deadline is not None and self._clock() >= deadline:
                    raise TimeoutError(f"batch job {self.id} is still {self.status.value}")
                self._sleep(interval)
                interval = min(MAX_POLL, interval * POLL_GROWTH)
        except KeyboardInterrupt:
            if cancel_on_stop:
                self.cancel()
                raise KeyboardInterrupt(f"batch job {self.id} cancelled") from None
            raise KeyboardInterrupt(
                f"batch job {self.id} is still {self.status.value} on the server; "
                f"re-attach with nb_mistral.batch_job({self.id!r})"
            ) from None
        finally:
            if view is not None:
                view.finish()
        return self.results()

    def results(self) -> Batch:
        """The replies in input order: outputs, per-item errors, and for a job that ended early
        (timeout, cancel, failure) an error on every item that got no result."""
        if self._results is not None:
            return self._results
        status = self.status
        if not status.terminal:
            status = self.refresh()
        if not status.terminal:
            raise MistralError(f"batch job {self.id} is still {status.value}: wait() for it")
        batch = self._empty_batch()
        for file_id in (self.info.get("output_file"), self.info.get("error_file")):
            if file_id:
                self._client._send(
                    "GET", f"{FILES_PATH}/{file_id}/content", None,
                    lambda response: apply_results(batch, _lines(response)),
                )  # fmt: skip
        outputs = self.info.get("outputs")
        if outputs:
            apply_results(batch, outputs)
        reason = f"no result: the batch job ended {status.value}"
        stopped = status is JobStatus.CANCELLED
        finish_missing(batch, reason, ItemState.STOPPED if stopped else ItemState.FAILED)
        failure = None if status is JobStatus.SUCCESS else MistralError(reason)
        batch._finish(failure)
        self._results = batch
        return batch

    def _empty_batch(self) -> Batch:
        labels: Sequence[Hashable] = (
            self._labels if self._labels is not None else range(self._count or self.total or 0)
        )
        items = Items((), len(labels), self._pandas_index)
        batch = Batch(items, model=self.model)
        for label in labels:
            batch._add(label, None)
        return batch

    def __repr__(self) -> str:
        return f"<BatchJob {self.id} {self.status.value} {self.ended}/{self.total}>"


def _lines(response: httpx.Response) -> Iterator[bytes]:
    """The body's lines as they arrive (a result file of any size, in bounded memory)."""
    pending = b""
    for chunk in response.iter_bytes():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending
