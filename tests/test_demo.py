"""``make demo`` as a user runs it: in a terminal, stopped with Ctrl+C.

JupyterLab answers the first Ctrl+C with "Shut down this Jupyter server (y/[n])?" and carries
on; the emulator must carry on with it (it used to die of the same SIGINT), and stop when
JupyterLab stops. The terminal is a real pseudo-terminal, so Jupyter asks as it would.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Terminal:
    """``make demo`` on a pseudo-terminal of its own; its output is collected as it comes."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.output = b""
        main, child = pty.openpty()
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=child,
            stdout=child,
            stderr=child,
            start_new_session=True,
        )
        os.close(child)
        self.fd = main

    def read_until(self, found: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while not found(self.text):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {what}; the terminal shows:\n{self.text[-3000:]}"
                )
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:  # the terminal closed: everything has exited
                    if not found(self.text):
                        raise AssertionError(
                            f"the demo exited before {what}:\n{self.text[-3000:]}"
                        ) from None
        return self.text

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl+C: SIGINT to its foreground process group."""
        os.killpg(os.getpgid(self.process.pid), signal.SIGINT)

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(os.getpgid(self.process.pid), signal.SIGKILL)
            self.process.wait()
        os.close(self.fd)


def test_ctrl_c_leaves_the_emulator_running_while_jupyterlab_runs(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "jupyter").exists() or shutil.which("make") is None:
        pytest.fail("make demo needs the project's .venv (make setup) and make", pytrace=False)
    emulator_port, lab_port = free_port(), free_port()
    workspace = tmp_path / "workspace"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MISTRAL_API_KEY", "MISTRAL_SERVER_URL")
    }
    env.update(
        HOME=str(tmp_path),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        LAB_ARGS="--IdentityProvider.token=demo-test",
    )
    command = [
        "make",
        "--no-print-directory",
        "demo",
        f"EMULATOR_PORT={emulator_port}",
        f"LAB_PORT={lab_port}",
    ]
    env["WORKSPACE"] = str(workspace)
    terminal = Terminal(command, env, ROOT)
    try:
        # printed once the server listens
        terminal.read_until(lambda text: "is running at" in text, 120, "JupyterLab to start")
        deadline = time.monotonic() + 60
        while not listening(lab_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listening(emulator_port), "the emulator is not listening"
        # the examples were copied into the workspace, and the news pop-up is turned off
        examples = sorted(path.name for path in (ROOT / "notebooks").glob("*.ipynb"))
        assert sorted(path.name for path in workspace.glob("*.ipynb")) == examples
        url = (
            f"http://127.0.0.1:{lab_port}/lab/api/settings/"
            "@jupyterlab/apputils-extension:notification?token=demo-test"
        )
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                settings = json.load(response)
        except OSError as exc:
            raise AssertionError(f"{exc}\n{terminal.text}") from None
        assert json.loads(settings["raw"] or "{}").get("fetchNews") == "false", settings

        terminal.ctrl_c()
        terminal.read_until(
            lambda text: "Shut down this Jupyter server" in text,
            60,
            "Jupyter to ask whether to shut down",
        )
        # Jupyter resumes when nobody answers; the emulator must still be there meanwhile
        assert listening(emulator_port), "one Ctrl+C killed the emulator"
        assert listening(lab_port)

        terminal.ctrl_c()  # a second Ctrl+C stops JupyterLab at once
        terminal.process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while listening(emulator_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not listening(emulator_port), "the emulator outlived JupyterLab"
    finally:
        terminal.close()
