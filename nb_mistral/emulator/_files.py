"""The Files API's storage: uploaded and produced files on disk, described in the official shape.

Contents live in a temporary directory, not in memory, so batch files of any size cost the
emulator only a buffer; the directory goes when the emulator stops.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from . import _wire


class SampleType(str, Enum):
    """What a file holds, as the API labels it."""

    PRETRAIN = "pretrain"
    INSTRUCT = "instruct"
    BATCH_REQUEST = "batch_request"
    BATCH_RESULT = "batch_result"
    BATCH_ERROR = "batch_error"


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    sample_type: SampleType
    source: str
    size: int
    num_lines: int
    created_at: int
    path: Path

    def to_json(self) -> dict[str, Any]:
        """The file object (``FileSchema``) the real API returns."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "sample_type": self.sample_type.value,
            "source": self.source,
            "num_lines": self.num_lines,
            "mimetype": "application/jsonl" if self.filename.endswith(".jsonl") else None,
            "signature": None,
        }


class LineWriter:
    """Writes JSON lines to a new file; ``close`` registers it and returns its record."""

    def __init__(self, store: FileStore, filename: str, sample_type: SampleType) -> None:
        self._store = store
        self._filename = filename
        self._sample_type = sample_type
        self._id = str(uuid.uuid4())
        self._path = store.directory / self._id
        self._out: io.BufferedWriter = open(self._path, "wb")  # noqa: SIM115 (closed in close)
        self.lines = 0

    def write(self, obj: Any) -> None:
        self._out.write(_wire.dumps(obj) + b"\n")
        self.lines += 1

    def close(self) -> StoredFile | None:
        """Register the file (None and nothing kept when no line was written)."""
        self._out.close()
        if not self.lines:
            self._path.unlink(missing_ok=True)
            return None
        return self._store.register(
            self._id, self._filename, "batch", self._sample_type, "mistral", self._path
        )

    def discard(self) -> None:
        self._out.close()
        self._path.unlink(missing_ok=True)


class FileStore:
    """Files by id, their contents in a temporary directory."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="nb_mistral-emulator-"))
        self._files: dict[str, StoredFile] = {}

    def add(self, filename: str, data: bytes, purpose: str) -> StoredFile:
        """Store an uploaded file."""
        file_id = str(uuid.uuid4())
        path = self.directory / file_id
        path.write_bytes(data)
        kind = SampleType.BATCH_REQUEST if purpose == "batch" else SampleType.INSTRUCT
        return self.register(file_id, filename, purpose, kind, "upload", path)

    def register(
        self,
        file_id: str,
        filename: str,
        purpose: str,
        sample_type: SampleType,
        source: str,
        path: Path,
    ) -> StoredFile:
        stored = StoredFile(
            id=file_id,
            filename=filename,
            purpose=purpose,
            sample_type=sample_type,
            source=source,
            size=path.stat().st_size,
            num_lines=_count_lines(path),
            created_at=int(time.time()),
            path=path,
        )
        self._files[file_id] = stored
        return stored

    def writer(self, filename: str, sample_type: SampleType) -> LineWriter:
        return LineWriter(self, filename, sample_type)

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        stored = self._files.pop(file_id, None)
        if stored is None:
            return False
        stored.path.unlink(missing_ok=True)
        return True

    def all(self) -> list[StoredFile]:
        """Newest first, as the API lists them."""
        return sorted(self._files.values(), key=lambda f: f.created_at, reverse=True)

    def close(self) -> None:
        self._files.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def read_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of a file, one at a time."""
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield line


def read_chunks(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as data:
        while chunk := data.read(size):
            yield chunk


def _count_lines(path: Path) -> int:
    count = 0
    last = b"\n"
    for chunk in read_chunks(path):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (last != b"\n")
