"""Who wrote a record: a ``streaming`` record whose writer process is gone was interrupted.

A process is named by its pid and a start token; the token tells a live writer from a later
process that happens to reuse its pid (on Linux, the boot id and the process start time).
"""

from __future__ import annotations

import os
import sys
import uuid
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _linux_token(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None  # a zombie has ended, whether or not it was reaped yet
    return f"{_boot_id()}:{fields[19]}"


@lru_cache(maxsize=4)  # keyed by pid, so a forked child gets its own token
def _own_token(pid: int) -> str:
    return _linux_token(pid) or f"uuid:{uuid.uuid4().hex}"


def current_writer() -> tuple[int, str]:
    """This process's pid and start token."""
    pid = os.getpid()
    return pid, _own_token(pid)


def writer_alive(pid: int | None, token: str | None) -> bool:
    """Whether the process that wrote a record may still be writing it."""
    if pid is None:
        return False
    own_pid, own_token = current_writer()
    if pid == own_pid:
        return token == own_token
    if token and not token.startswith("uuid:"):
        return _linux_token(pid) == token
    if sys.platform == "win32":
        return True  # no safe liveness probe (os.kill would end the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, belongs to someone else
    return True
