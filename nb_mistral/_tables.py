"""DataFrames, Series and numpy arrays in prompts: shape, dtypes and a Markdown table of the
first rows, within a character budget, saying what was left out.

pandas' own repr cuts rows and columns with ``...`` and a model cannot tell what is missing;
this description states it. Neither pandas nor numpy is imported: values are recognised by
their type's module.
"""

from __future__ import annotations

from typing import Any

from ._images import ContextError

DEFAULT_MAX_CHARS = 8_000
DEFAULT_ROWS = 20
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
    when they do not fit in ``max_chars``)."""
    title, columns, dtypes, index, rows = _parts(value, name)
    width = len(columns)
    head = [title, _dtype_line(columns, dtypes, max_chars // 4), ""]
    shown = _fit_columns(columns, max_chars // 2)
    header = _row(["", *columns[:shown]]) + "\n" + _row(["---"] * (shown + 1))
    budget = max_chars - len("\n".join(head)) - len(header) - 200  # room for the footer
    lines: list[str] = []
    used = 0
    limit = len(rows) if all_rows else min(len(rows), DEFAULT_ROWS)
    for position in range(limit):
        line = _row([index[position], *rows[position][:shown]])
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
    if all_rows and len(lines) < len(rows):
        needed = sum(len(_row([index[i], *rows[i][:shown]])) + 1 for i in range(len(rows)))
        raise ContextError(
            f"{{{name or 'value'}:all}}: all {len(rows):,} rows need about "
            f"{needed + len(header):,} characters, over max_context_chars ({max_chars:,}); "
            "use {" + (name or "value") + "} for the first rows, or raise "
            "%config MistralMagics.max_context_chars. Nothing was sent."
        )
    left_out = []
    if len(lines) < len(rows):
        left_out.append(f"{len(rows) - len(lines):,} of {len(rows):,} rows")
    if shown < width:
        left_out.append(f"{width - shown:,} of {width:,} columns ({', '.join(columns[shown:])})")
    footer = (
        f"(First {len(lines):,} rows shown; left out: {' and '.join(left_out)}.)"
        if left_out
        else "(All rows and columns shown.)"
    )
    table = "\n".join([header, *lines])
    return _clip("\n".join([*head, table, "", footer]), max_chars)


def _parts(value: Any, name: str) -> tuple[str, list[str], list[str], list[str], list[list[str]]]:
    """Title, column names, dtypes, index labels and cell texts of a table-like value."""
    label = f" `{name}`" if name else ""
    kind = type(value).__name__
    if kind == "DataFrame":
        n_rows, n_cols = value.shape
        title = f"pandas DataFrame{label}: {n_rows:,} rows × {n_cols:,} columns"
        columns = [_cell(column) for column in value.columns]
        dtypes = [str(dtype) for dtype in value.dtypes]
        index = [_cell(label) for label in value.index]
        rows = [[_cell(cell) for cell in row] for row in value.itertuples(index=False)]
        return title, columns, dtypes, index, rows
    if kind == "Series":
        column = _cell(value.name) if value.name is not None else "value"
        title = f"pandas Series{label}: {len(value):,} rows, dtype {value.dtype}"
        index = [_cell(label) for label in value.index]
        return title, [column], [str(value.dtype)], index, [[_cell(cell)] for cell in value]
    shape = " × ".join(f"{size:,}" for size in value.shape) or "scalar"
    title = f"numpy array{label}: shape ({shape}), dtype {value.dtype}"
    if value.ndim == 0:
        return title, ["value"], [str(value.dtype)], ["0"], [[_cell(value.item())]]
    if value.ndim == 1:
        grid = value.reshape(-1, 1)
    else:
        grid = value.reshape(value.shape[0], -1)
        if value.ndim > 2:
            title += " (each row below is one index of the first axis, flattened)"
    columns = ["value"] if value.ndim == 1 else [str(i) for i in range(grid.shape[1])]
    rows = [[_cell(cell) for cell in row] for row in grid.tolist()]
    index = [str(i) for i in range(grid.shape[0])]
    return title, columns, [str(value.dtype)] * len(columns), index, rows


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
