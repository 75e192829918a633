"""The store's writer thread: takes what recorders accumulated and writes it in one short
transaction per pass. Recorders wake it when they have news (every ``WRITE_INTERVAL`` of stream,
and when a reply ends); otherwise it sleeps. The threads that stream only append to lists; they
never wait on the disk.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import warnings
from array import array

from . import _batch as batch
from ._database import StoreWarning, write
from ._process import current_writer
from ._record import RecordStatus, derive_reply
from ._recorder import CLOSE_GRACE, Outcome, Recorder, json_or_none

Taken = tuple["array[float]", list[bytes]]


class Writer:
    """One per store and process; started with the first recorder."""

    def __init__(self, conn: sqlite3.Connection, *, search: bool, label: str) -> None:
        self._conn = conn
        self._search = search
        self._label = label
        self._active: dict[str, Recorder] = {}
        self._seqs: dict[str, int] = {}  # record id -> row, once inserted
        self._batches: dict[str, int] = {}  # record id -> next batch number
        self._new_seqs: dict[str, int] = {}  # the same, assigned by the transaction under way
        self._new_batches: dict[str, int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._begun = 0
        self._completed = 0
        self._closing = False
        self._broken = False
        self._thread: threading.Thread | None = None

    # -- called from any thread ----------------------------------------------------------

    def submit(self, recorder: Recorder) -> None:
        """Track a new recorder; nothing is written before it reports news (``wake``)."""
        with self._lock:
            self._active[recorder.id] = recorder
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"nb_mistral store writer {self._label}", daemon=True
                )
                self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def streaming_ids(self) -> set[str]:
        """Records this process is still writing."""
        with self._lock:
            return {rid for rid, rec in self._active.items() if rec.outcome is None}

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
        if not running:
            return True
        with self._done:
            target = self._begun + 1
            self._wake.set()
            return self._done.wait_for(lambda: self._completed >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """End unfinished records (``interrupted`` unless their stream was closed), write
        everything, stop the thread."""
        with self._lock:
            unfinished = [rec for rec in self._active.values() if rec.outcome is None]
        for recorder in unfinished:
            if recorder.closed_at is not None:
                recorder.finish_from_stream()
            else:
                recorder.finish(RecordStatus.INTERRUPTED)
        self.flush(timeout)
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            self._closing = True
        if running:
            self._wake.set()  # the thread closes the connection on its way out
        else:
            self._conn.close()

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._timeout())
            self._wake.clear()
            with self._done:
                self._begun += 1
                number = self._begun
            try:
                self._pass()
            except Exception as exc:  # a bug must not leave flush() waiting for ever
                self._give_up(exc)
            with self._done:
                self._completed = number
                self._done.notify_all()
            if self._closing:
                self._conn.close()
                return

    def _timeout(self) -> float | None:
        """While records are open, look at them every ``CLOSE_GRACE`` (to end those whose
        stream was closed without ``finish``); otherwise sleep until woken."""
        with self._lock:
            return CLOSE_GRACE if self._active else None

    def _pass(self) -> None:
        """Write everything the recorders accumulated, in one transaction."""
        with self._lock:
            recorders = list(self._active.values())
        if not recorders:
            return
        overdue = time.monotonic() - CLOSE_GRACE
        work = []
        for recorder in recorders:
            closed_at = recorder.closed_at
            if recorder.outcome is None and closed_at is not None and closed_at <= overdue:
                recorder.finish_from_stream()
            outcome = recorder.outcome  # first: every chunk logged before it is taken below
            taken = recorder.log.take()
            work.append((recorder, outcome, taken))
        if not self._broken:
            try:
                write(self._conn, lambda conn: self._write_all(conn, work))
                self._seqs.update(self._new_seqs)  # only now: a retried attempt starts over
                self._batches.update(self._new_batches)
            except sqlite3.Error as exc:
                self._give_up(exc)
        with self._lock:
            for recorder, outcome, _ in work:
                if outcome is not None:
                    self._active.pop(recorder.id, None)
                    self._seqs.pop(recorder.id, None)
                    self._batches.pop(recorder.id, None)

    def _give_up(self, exc: Exception) -> None:
        """Stop writing (once, with one warning); the streams go on unrecorded."""
        if not self._broken:
            self._broken = True
            warnings.warn(
                f"nb_mistral: the reply store stopped recording ({type(exc).__name__}: {exc})",
                StoreWarning,
                2,
            )

    def _write_all(
        self, conn: sqlite3.Connection, work: list[tuple[Recorder, Outcome | None, Taken]]
    ) -> None:
        """One attempt of the pass's transaction; what it assigns is kept apart until it
        commits (``write`` may roll back and try again)."""
        self._new_seqs = {}
        self._new_batches = {}
        for recorder, outcome, taken in work:
            seq = self._seqs.get(recorder.id)
            if seq is None:
                seq = self._new_seqs[recorder.id] = self._insert(conn, recorder)
            if taken[1]:
                self._append(conn, recorder, seq, taken)
            if outcome is not None:
                self._end(conn, recorder, seq, outcome)

    def _insert(self, conn: sqlite3.Connection, recorder: Recorder) -> int:
        start = recorder.start
        pid, token = current_writer()
        cursor = conn.execute(
            "INSERT INTO records (id, key, created, server_url, endpoint, model, prompt, "
            "request, status, writer_pid, writer_token, notebook, cell_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                start.id,
                start.key,
                start.created,
                start.server_url,
                start.endpoint,
                start.model,
                start.prompt,
                start.request,
                RecordStatus.STREAMING.value,
                pid,
                token,
                start.notebook,
                start.cell_id,
            ),
        )
        seq = int(cursor.lastrowid or 0)
        if self._search:
            conn.execute(
                "INSERT INTO records_search (rowid, prompt, text) VALUES (?, ?, '')",
                (seq, start.prompt),
            )
        return seq

    def _append(
        self,
        conn: sqlite3.Connection,
        recorder: Recorder,
        seq: int,
        taken: Taken,
    ) -> None:
        offsets, chunks = taken
        data, sizes, stamps = batch.pack(offsets, chunks)
        clean = recorder.redactor.data(data)
        if clean is not data and clean != data:  # the chunk edges moved: one piece
            data, sizes, stamps = batch.pack(offsets[-1:], [clean])
        number = self._new_batches.get(recorder.id, self._batches.get(recorder.id, 0))
        self._new_batches[recorder.id] = number + 1
        batch.insert(conn, seq, number, (data, sizes, stamps))

    def _end(
        self, conn: sqlite3.Connection, recorder: Recorder, seq: int, outcome: Outcome
    ) -> None:
        redact = recorder.redactor.text
        text = redact(outcome.text) if outcome.text is not None else None
        thinking = redact(outcome.thinking) if outcome.thinking is not None else None
        finish_reason, model, status = outcome.finish_reason, outcome.model, outcome.status
        usage = json_or_none(outcome.usage)
        tool_calls = json_or_none(outcome.tool_calls)
        message = redact(outcome.error_message) if outcome.error_message else None
        if text is None:
            derived, done = derive_reply(batch.load(conn, seq))
            text, thinking = redact(derived.text), redact(derived.thinking)
            finish_reason = finish_reason or derived.finish_reason
            usage = usage or json_or_none(derived.usage)
            tool_calls = tool_calls or json_or_none(derived.tool_calls)
            model = model or derived.model or None
            if status is None:
                ended = done or derived.finish_reason is not None
                status = RecordStatus.COMPLETE if ended else RecordStatus.STOPPED
        conn.execute(
            "UPDATE records SET ended = ?, status = ?, text = ?, thinking = ?, tool_calls = ?, "
            "usage = ?, finish_reason = ?, model = coalesce(?, model), error_type = ?, "
            "error_message = ? WHERE seq = ?",
            (
                outcome.ended,
                (status or RecordStatus.COMPLETE).value,
                text,
                thinking or "",
                redact(tool_calls) if tool_calls else None,
                redact(usage) if usage else None,
                finish_reason,
                model,
                outcome.error_type,
                message,
                seq,
            ),
        )
        if self._search:
            conn.execute("DELETE FROM records_search WHERE rowid = ?", (seq,))
            conn.execute(
                "INSERT INTO records_search (rowid, prompt, text) VALUES (?, ?, ?)",
                (seq, recorder.start.prompt, text),
            )
