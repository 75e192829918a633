"""``python -m nb_mistral.store export OUT.jsonl [--notebook PATH] [--store PATH]`` and
``python -m nb_mistral.store import IN.jsonl [--store PATH]`` (``-`` for stdout / stdin)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from ._registry import open_store
from ._store import Store


@contextlib.contextmanager
def _opened(name: str, mode: str) -> Iterator[IO[str]]:
    if name == "-":
        yield sys.stdout if "w" in mode else sys.stdin
        return
    with open(name, mode, encoding="utf-8") as handle:
        yield handle


def _store(setting: str | None) -> Store:
    store = open_store(setting)
    if not isinstance(store, Store):
        raise SystemExit("the reply store is off (NB_MISTRAL_STORE=off): nothing to do")
    return store


def export(path: str, notebook: str | None, setting: str | None) -> int:
    store = _store(setting)
    count = 0
    with _opened(path, "w") as out:
        for item in store.export_records(notebook):
            out.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


def import_(path: str, setting: str | None) -> int:
    store = _store(setting)
    with _opened(path, "r") as source:
        items = [json.loads(line) for line in source if line.strip()]
    return store.import_records(items)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nb_mistral.store", description="Export and import recorded replies."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="write records to a JSON lines file")
    out.add_argument("path", help="the file to write (- for stdout)")
    out.add_argument("--notebook", help="only the records of this notebook")
    out.add_argument("--store", help="the store file (default: NB_MISTRAL_STORE or ~/.nb_mistral)")
    into = commands.add_parser("import", help="load records from a JSON lines file")
    into.add_argument("path", help="the file to read (- for stdin)")
    into.add_argument("--store", help="the store file (default: NB_MISTRAL_STORE or ~/.nb_mistral)")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            count = export(args.path, args.notebook, args.store)
            print(f"exported {count} record(s) to {args.path}", file=sys.stderr)
        else:
            count = import_(args.path, args.store)
            print(f"imported {count} new record(s) from {args.path}", file=sys.stderr)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"python -m nb_mistral.store {args.command}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
