"""DataFrames, Series and numpy arrays in prompts: shape, dtypes and a Markdown table of the
first rows, within a character budget, saying what was left out.

pandas' own repr cuts rows and columns with ``...`` and a model cannot tell what is missing;
this description states it. Neither pandas nor numpy is imported: values are recognised by
their type's module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._images import ContextError

DEFAULT_MAX_CHARS = 8_000
DEFAULT_ROWS = 20
_CHUNK = 256  # rows formatted at a time
MAX_CELL_CHARS = 60


def _module(value: Any) -> str:
    return type(value).__module__ or ""


def is_table(value: Any) -> bool:
    """A pandas DataFrame or Series, or a numpy array."""
    name = type(value).__name__
    if _module(value).startswith("pandas"):
        return name in ("DataFrame", "Series")
    return _module(value).startswith("numpy") and name == "ndarray"


def describe_table(
    value: Any, *, max_chars: int = DEFAULT_MAX_CHARS, all_rows: bool = False, name: str = ""
) -> str:
    """The description sent for ``{name}`` (``{name:all}``: every row, or a ``ContextError``
    when they do not fit in ``max_chars``). Only the rows that can be shown are formatted, so
    a frame of millions of rows costs no more than a small one."""
    table = _Table.of(value, name)
    width = len(table.columns)
    head = [table.title, _dtype_line(table.columns, table.dtypes, max_chars // 4), ""]
    shown = _fit_columns(table.columns, max_chars // 2)
    header = _row(["", *table.columns[:shown]]) + "\n" + _row(["---"] * (shown + 1))
    budget = max_chars - len("\n".join(head)) - len(header) - 200  # room for the footer
    limit = table.n_rows if all_rows else min(table.n_rows, DEFAULT_ROWS)
    lines: list[str] = []
    used = 0
    for label, cells in table.rows(limit):
        line = _row([label, *cells[:shown]])
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
    if all_rows and len(lines) < table.n_rows:
        needed = len(header) + used * table.n_rows // max(len(lines), 1)
        shown_name = name or "value"
        raise ContextError(
            f"{{{shown_name}:all}}: all {table.n_rows:,} rows need about {needed:,} "
            f"characters, over max_context_chars ({max_chars:,}); use {{{shown_name}}} for "
            "the first rows, or raise %config MistralMagics.max_context_chars. Nothing was sent."
        )
    left_out = []
    if len(lines) < table.n_rows:
        left_out.append(f"{table.n_rows - len(lines):,} of {table.n_rows:,} rows")
    if shown < width:
        rest = ", ".join(table.columns[shown:])
        left_out.append(f"{width - shown:,} of {width:,} columns ({rest})")
    footer = (
        f"(First {len(lines):,} rows shown; left out: {' and '.join(left_out)}.)"
        if left_out
        else "(All rows and columns shown.)"
    )
    body = "\n".join([header, *lines])
    return _clip("\n".join([*head, body, "", footer]), max_chars)


class _Table:
    """A table-like value as title, column names, dtypes, and its rows formatted on demand."""

    def __init__(
        self, title: str, columns: list[str], dtypes: list[str], n_rows: int, source: Any
    ) -> None:
        self.title = title
        self.columns = columns
        self.dtypes = dtypes
        self.n_rows = n_rows
        self._source = source  # a DataFrame, or a 2-D numpy array

    @classmethod
    def of(cls, value: Any, name: str) -> _Table:
        label = f" `{name}`" if name else ""
        kind = type(value).__name__
        if kind == "DataFrame":
            n_rows, n_cols = value.shape
            title = f"pandas DataFrame{label}: {n_rows:,} rows × {n_cols:,} columns"
            columns = [_cell(column) for column in value.columns]
            return cls(title, columns, [str(d) for d in value.dtypes], n_rows, value)
        if kind == "Series":
            column = _cell(value.name) if value.name is not None else "value"
            title = f"pandas Series{label}: {len(value):,} rows, dtype {value.dtype}"
            return cls(title, [column], [str(value.dtype)], len(value), value.to_frame())
        shape = " × ".join(f"{size:,}" for size in value.shape) or "scalar"
        title = f"numpy array{label}: shape ({shape}), dtype {value.dtype}"
        if value.ndim > 2:
            title += " (each row below is one index of the first axis, flattened)"
        grid = value.reshape(1, 1) if value.ndim == 0 else value.reshape(value.shape[0], -1)
        if value.ndim == 1:
            grid = value.reshape(-1, 1)
        columns = ["value"] if value.ndim < 2 else [str(i) for i in range(grid.shape[1])]
        return cls(title, columns, [str(value.dtype)] * len(columns), grid.shape[0], grid)

    def rows(self, limit: int) -> Iterator[tuple[str, list[str]]]:
        """``(index label, cell texts)`` of the first ``limit`` rows, formatted as they are
        taken (the caller stops when its budget is spent)."""
        source = self._source
        if type(source).__name__ == "DataFrame":
            for start in range(0, limit, _CHUNK):
                part = source.iloc[start : min(start + _CHUNK, limit)]
                for label, row in zip(part.index, part.itertuples(index=False), strict=True):
                    yield _cell(label), [_cell(cell) for cell in row]
            return
        for start in range(0, limit, _CHUNK):
            part = source[start : min(start + _CHUNK, limit)].tolist()
            for offset, row in enumerate(part):
                yield str(start + offset), [_cell(cell) for cell in row]


def _cell(value: Any) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _dtype_line(columns: list[str], dtypes: list[str], limit: int) -> str:
    if len(set(dtypes)) == 1 and len(columns) > 1:
        return f"dtypes: all {dtypes[0]}"
    parts: list[str] = []
    for position, (column, dtype) in enumerate(zip(columns, dtypes, strict=True)):
        part = f"{column} ({dtype})"
        if sum(len(p) + 2 for p in parts) + len(part) > limit:
            return "dtypes: " + ", ".join(parts) + f", and {len(columns) - position} more"
        parts.append(part)
    return "dtypes: " + ", ".join(parts)


def _fit_columns(columns: list[str], limit: int) -> int:
    """How many leading columns to show: as many as a header row within ``limit`` holds."""
    used = 4
    for position, column in enumerate(columns):
        used += max(len(column), MAX_CELL_CHARS // 4) + 3
        if used > limit:
            return max(position, 1)
    return len(columns)


def _clip(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
