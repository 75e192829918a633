"""Batch over data: one prompt over many items, live (``map`` / ``amap``) or on Mistral's
Batch API (``backend="batch"``), with the replies back in input order as a ``Batch``."""

from ._api import amap, batch_job, map
from ._drive import BatchInterrupted
from ._jobs import BatchJob, JobStatus
from ._result import Batch, BatchError
from ._resume import MemoryCache, ReplyCache

__all__ = [
    "Batch",
    "BatchError",
    "BatchInterrupted",
    "BatchJob",
    "JobStatus",
    "MemoryCache",
    "ReplyCache",
    "amap",
    "batch_job",
    "map",
]
