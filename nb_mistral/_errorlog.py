"""``{Err}`` and ``{Err[n]}`` in prompts: the exceptions of the notebook's cells, by execution
count, with their tracebacks as text.

Recorded from IPython's ``post_run_cell`` event (its result names the exception and the cell's
execution count), so no exception hook is taken over; ``sys.last_value`` stands in for an
exception raised before the extension was loaded.
"""

from __future__ import annotations

import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

# IPython's label of a cell's code for a file name: ("Cell", "In[3]"), or None
CodeName = Callable[[str], "tuple[str, str] | None"]

MAX_RECORDED = 50


def traceback_text(error: BaseException, max_chars: int, code_name: CodeName | None = None) -> str:
    """The traceback as Python prints it, without IPython's own frames and with cells named
    as IPython names them (``Cell In[3]``, not a temporary file), the end kept when it is too
    long (the end says what happened)."""
    lines = ["Traceback (most recent call last):\n"]
    for frame in traceback.extract_tb(error.__traceback__):
        if "/IPython/" in frame.filename.replace("\\", "/"):
            continue
        label = code_name(frame.filename) if code_name is not None else None
        if label is None:
            lines += traceback.format_list([frame])
        else:
            source = f"    {frame.line.strip()}\n" if frame.line else ""
            lines.append(f"  {label[0]} {label[1]}, line {frame.lineno}, in {frame.name}\n{source}")
    lines += traceback.format_exception_only(type(error), error)
    text = "".join(lines).rstrip("\n")
    if len(text) > max_chars:
        text = "[… start of the traceback left out]\n" + text[-(max_chars - 40) :]
    return text


class ErrorLog:
    """The exceptions of the last cells (``MAX_RECORDED``), by execution count."""

    def __init__(self) -> None:
        self.by_cell: OrderedDict[int, BaseException] = OrderedDict()
        self.code_name: CodeName | None = None

    def attach(self, shell: Any) -> ErrorLog:
        """Start recording the cells of ``shell``."""
        shell.events.register("post_run_cell", self.record)
        self.code_name = getattr(getattr(shell, "compile", None), "format_code_name", None)
        return self

    def record(self, result: Any) -> None:
        """``post_run_cell``: keep the cell's exception, if it raised one."""
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        count = getattr(result, "execution_count", None)
        if isinstance(error, BaseException) and isinstance(count, int):
            self.by_cell[count] = error
            while len(self.by_cell) > MAX_RECORDED:
                self.by_cell.popitem(last=False)

    def last(self) -> tuple[int | None, BaseException]:
        """The latest exception and its cell (``LookupError`` when there is none)."""
        if self.by_cell:
            count = next(reversed(self.by_cell))
            return count, self.by_cell[count]
        error = getattr(sys, "last_value", None)
        if isinstance(error, BaseException):
            return None, error
        raise LookupError("no exception has been raised in this session yet")

    def of_cell(self, count: int) -> BaseException:
        if count in self.by_cell:
            return self.by_cell[count]
        cells = ", ".join(str(n) for n in self.by_cell) or "none"
        raise LookupError(f"cell {count} raised no exception (cells with one: {cells})")


class ErrRef:
    """What ``Err`` names in a prompt: ``{Err}`` the latest exception, ``{Err[n]}`` cell n's."""

    def __init__(self, log: ErrorLog) -> None:
        self.log = log

    def __getitem__(self, count: int) -> CellError:
        if not isinstance(count, int):
            raise LookupError(f"Err[{count!r}]: give a cell's execution count, as in Err[3]")
        return CellError(count, self.log.of_cell(count), self.log.code_name)

    def latest(self) -> CellError:
        count, error = self.log.last()
        return CellError(count, error, self.log.code_name)


class CellError:
    """One recorded exception, rendered for a prompt."""

    def __init__(
        self, count: int | None, error: BaseException, code_name: CodeName | None = None
    ) -> None:
        self.count = count
        self.error = error
        self.code_name = code_name

    def text(self, max_chars: int) -> str:
        where = f" in cell [{self.count}]" if self.count is not None else ""
        trace = traceback_text(self.error, max_chars, self.code_name)
        return f"Exception{where}:\n```\n{trace}\n```"
