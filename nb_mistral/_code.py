"""The code of a reply, for ``%%mistral -f code``: the first fenced block, and whether the
reply stopped inside it (a block cut by ``max_tokens`` or a stop has no closing fence)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

_parser = MarkdownIt("commonmark")


@dataclass(frozen=True)
class CodeBlock:
    code: str
    closed: bool  # False when the reply ended before the block's closing fence


def first_code_block(markdown: str) -> CodeBlock | None:
    """The first fenced (or indented) code block of a reply, or None when it has none."""
    lines = markdown.splitlines()
    for token in _parser.parse(markdown):
        if token.type not in ("fence", "code_block"):
            continue
        closed = True
        if token.type == "fence" and token.map is not None and token.map[1] >= len(lines):
            last = lines[-1].strip() if token.map[1] - token.map[0] > 1 else ""
            marker = token.markup
            closed = last.startswith(marker) and set(last) == {marker[0]}
        return CodeBlock(token.content.rstrip("\n"), closed)
    return None


class CodeCells:
    """The cells whose ``-f code`` reply was inserted already, so that running one again, or
    "Restart Kernel and Run All", inserts no second copy. Kept beside the reply store (a small
    JSON file), so a restarted kernel remembers too; in memory only when the store is off."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._memory: set[str] = set()

    @staticmethod
    def key(notebook: str | None, cell_id: str) -> str:
        return f"{notebook or ''}\n{cell_id}"

    def __contains__(self, key: object) -> bool:
        return key in self._memory or key in self._load()

    def add(self, key: str) -> None:
        self._memory.add(key)
        if self._path is None:
            return
        keys = self._load() | {key}
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._path.with_name(self._path.name + f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(sorted(keys)), encoding="utf-8")
            temporary.replace(self._path)  # atomic: another kernel never reads half a file
        except OSError:
            pass  # remembered in memory for this kernel; never fails a cell

    def _load(self) -> set[str]:
        if self._path is None:
            return set()
        try:
            loaded = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        return (
            {key for key in loaded if isinstance(key, str)} if isinstance(loaded, list) else set()
        )


def code_cells_beside(store_file: Path | None) -> CodeCells:
    """The registry kept next to the reply store's file (none when the store is off)."""
    if store_file is None:
        return CodeCells(None)
    return CodeCells(store_file.with_name(store_file.name + ".code-cells.json"))
