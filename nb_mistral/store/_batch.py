"""How a batch of recorded chunks is stored: the bytes joined, plus the size and arrival offset
of each chunk as little-endian arrays (uint32, float64). Packing is a few C calls, so the
writer thread holds the GIL for microseconds, not for a Python loop over every chunk."""

from __future__ import annotations

import sqlite3
import sys
from array import array
from collections.abc import Sequence

_LITTLE = sys.byteorder == "little"


def _to_bytes(values: array[int] | array[float]) -> bytes:
    if not _LITTLE:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _from_bytes(typecode: str, raw: bytes) -> array[int] | array[float]:
    values: array[int] | array[float] = array(typecode)
    values.frombytes(raw)
    if not _LITTLE:
        values.byteswap()
    return values


def pack(offsets: Sequence[float], chunks: Sequence[bytes]) -> tuple[bytes, bytes, bytes]:
    """(data, sizes, offsets) columns of a batch."""
    sizes = array("I", map(len, chunks))
    return b"".join(chunks), _to_bytes(sizes), _to_bytes(array("d", offsets))


def unpack(data: bytes, sizes: bytes, offsets: bytes) -> list[tuple[float, bytes]]:
    """The chunks of a batch with their offsets; bytes past the sizes make one more chunk."""
    chunks: list[tuple[float, bytes]] = []
    position = 0
    stamps = _from_bytes("d", offsets)
    for size, offset in zip(_from_bytes("I", sizes), stamps, strict=False):
        chunks.append((float(offset), bytes(data[position : position + int(size)])))
        position += int(size)
    if position < len(data):
        chunks.append((chunks[-1][0] if chunks else 0.0, bytes(data[position:])))
    return chunks


def insert(
    conn: sqlite3.Connection,
    seq: int,
    batch: int,
    columns: tuple[bytes, bytes, bytes],
) -> None:
    conn.execute(
        "INSERT INTO chunks (record_seq, batch, data, sizes, offsets) VALUES (?, ?, ?, ?, ?)",
        (seq, batch, *columns),
    )


def load(conn: sqlite3.Connection, seq: int) -> list[tuple[float, bytes]]:
    """A record's bytes as (arrival offset, chunk), in order."""
    chunks: list[tuple[float, bytes]] = []
    rows = conn.execute(
        "SELECT data, sizes, offsets FROM chunks WHERE record_seq = ? ORDER BY batch", (seq,)
    )
    for data, sizes, offsets in rows:
        chunks += unpack(data, sizes, offsets)
    return chunks
