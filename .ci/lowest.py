"""Print the runtime dependencies of pyproject.toml pinned to the lowest versions it allows
(`name>=X` becomes `name==X`), for CI's run of the unit tests at those versions."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

project = tomllib.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml").read_text())
for requirement in project["project"]["dependencies"]:
    match = re.match(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([^,;\s]+)", requirement)
    if match is None:
        sys.exit(f"no lower bound to pin in {requirement!r}: give it one (>=)")
    print(f"{match.group(1)}=={match.group(2)}")
