"""Everything the routes share: settings that may change while serving, limits, storage.

Owned by the server's loop; the test's thread changes settings through the ``Emulator``
properties (plain attribute writes, read by the next request) and reads the recorder.
"""

from __future__ import annotations

from ._batch import BatchJobs
from ._files import FileStore
from ._limits import ConcurrencyGate, RateLimiter
from ._recorder import Recorder


class EmulatorState:
    def __init__(
        self,
        *,
        tokens_per_second: float | None = None,
        api_key: str | None = None,
        rate_limit: float | None = None,
        max_concurrency: int | None = None,
        batch_seconds: float = 2.0,
    ) -> None:
        self.recorder = Recorder()
        self.tokens_per_second = tokens_per_second
        self.api_key = api_key
        self.batch_seconds = batch_seconds
        self.rate = RateLimiter(rate_limit)
        self.gate = ConcurrencyGate(max_concurrency, self.recorder)
        self._files: FileStore | None = None
        self._jobs: BatchJobs | None = None

    @property
    def files(self) -> FileStore:
        if self._files is None:
            raise RuntimeError("the emulator is not serving")
        return self._files

    @property
    def jobs(self) -> BatchJobs:
        if self._jobs is None:
            raise RuntimeError("the emulator is not serving")
        return self._jobs

    def open_storage(self) -> None:
        """Fresh file store and job list for a server that starts."""
        self._files = FileStore()
        self._jobs = BatchJobs(self._files, lambda: self.batch_seconds)

    async def close_storage(self) -> None:
        """Stop running jobs and delete every stored file."""
        jobs, files = self._jobs, self._files
        self._jobs = self._files = None
        if jobs is not None:
            await jobs.close()
        if files is not None:
            files.close()
