"""JupyterLab 4 and Debian's Chromium for the real-browser tests, and the steps that drive them.

``running_lab`` starts a JupyterLab server on a free loopback port (its kernels pointed at a
server we give), ``launch_chromium`` a headless Chromium for Playwright; the functions below
open a notebook, run cells and read outputs the way a person would. Shared by
``test_browser.py`` and ``test_browser_security.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.sign import NotebookNotary
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LONG = 120_000  # ms: generous deadlines for a 2-core CI machine

# JupyterLab user settings: no news or update pop-ups, and every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def chromium_path() -> str:
    """Debian's chromium (or $NB_MISTRAL_CHROMIUM); a clear failure when it is missing."""
    candidates = [os.environ.get("NB_MISTRAL_CHROMIUM", ""), "/usr/bin/chromium"]
    candidates += [shutil.which(name) or "" for name in ("chromium", "chromium-browser")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "the browser tests need Chromium, and none was found: install Debian's "
        "(`apt-get install chromium`, as .ci/run does) or set NB_MISTRAL_CHROMIUM to a "
        "Chromium binary",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    data_dir: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def _write_settings(settings: Path) -> None:
    for relative, values in LAB_SETTINGS.items():
        path = settings / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@contextlib.contextmanager
def running_lab(base: Path, server_url: str, env: Mapping[str, str] = {}) -> Iterator[Lab]:
    """A JupyterLab server under ``base``, its kernels talking to ``server_url`` (no key);
    ``env`` adds to the kernels' environment (e.g. ``PYTHONPATH``)."""
    chromium_path()  # fail first, and clearly, when there is no browser
    root, settings, runtime, data = (base / n for n in ("notebooks", "settings", "run", "data"))
    for folder in (root, settings, runtime, data):
        folder.mkdir(parents=True, exist_ok=True)
    _write_settings(settings)
    token, port = secrets.token_hex(16), free_port()
    lab_env = {
        **os.environ,
        "MISTRAL_SERVER_URL": server_url,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_DATA_DIR": str(data),  # the notebook signatures (trust) live here
        **env,
    }
    lab_env.pop("MISTRAL_API_KEY", None)
    log = base / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--ServerApp.allow_root=True",  # CI runs as root
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=lab_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"JupyterLab exited ({server.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(answers, 120, "JupyterLab to answer", interval=0.25)
        yield Lab(url, token, root, data, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium for Playwright (a fresh profile each time)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


# -- driving a notebook ---------------------------------------------------------------------


def open_notebook(page: Any, lab: Lab, name: str) -> None:
    """Open a notebook and wait until its kernel is started and idle."""
    page.goto(lab.notebook_url(name))
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible", timeout=LONG)
    wait_kernel_idle(page)


def wait_kernel_idle(page: Any, timeout: int = LONG) -> None:
    """The execution indicator says idle before any kernel exists, so the status bar must
    also name a kernel that is idle."""
    page.wait_for_function(
        """() => {
            const indicator = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) '
                + '.jp-Notebook-ExecutionIndicator');
            const bar = document.querySelector('#jp-main-statusbar');
            return indicator !== null && indicator.getAttribute('data-status') === 'idle'
                && bar !== null && bar.innerText.includes('Idle')
                && !bar.innerText.includes('No Kernel');
        }""",
        timeout=timeout,
    )


def cell(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)


def run_cell(page: Any, index: int) -> None:
    """Select the cell's editor and press Shift+Enter; again if the cell did not start (a key
    press that lands while JupyterLab is still settling is lost, rarely)."""
    target = cell(page, index)
    prompt = target.locator(".jp-InputPrompt")
    before = prompt.inner_text().strip()
    for _attempt in range(3):
        target.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(
                "([el, before]) => el.textContent.trim() !== before",
                arg=[prompt.element_handle(), before],
                timeout=15_000,
            )
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError(f"cell {index} did not start after three Shift+Enter")


def wait_cell_done(page: Any, index: int, timeout: int = LONG) -> None:
    """Until the cell's prompt shows an execution count (not ``[*]`` nor ``[ ]``); then fails,
    with the error, if the cell raised."""
    prompt = cell(page, index).locator(".jp-InputPrompt")
    page.wait_for_function(
        "el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=timeout
    )
    errors = cell(page, index).locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
    text = "\n".join(errors.all_inner_texts())
    if "Error" in text or "Traceback" in text:
        raise AssertionError(f"cell {index} failed:\n{text}")


def output_text(page: Any, index: int) -> str:
    outputs = cell(page, index).locator(".jp-OutputArea-output")
    return "\n".join(outputs.all_inner_texts())


def lab_command(page: Any, menu: str, command: str) -> None:
    """Run a JupyterLab command from the menu bar (``menu`` the title, ``command`` its id)."""
    title = re.compile(f"^{re.escape(menu)}$")
    page.locator(".lm-MenuBar-itemLabel").filter(has_text=title).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()


# -- whole notebooks: write, Run All, save, reopen ------------------------------------------


def write_notebook(path: Path, sources: list[str]) -> None:
    cells = [new_code_cell(source) for source in sources]  # type: ignore[no-untyped-call]
    nb = new_notebook(cells=cells)  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]


PROMPTS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell .jp-InputPrompt'))
    .map(p => p.textContent.trim())"""


def prompts(page: Any) -> list[str]:
    return list(page.evaluate(PROMPTS_JS))


def run_all(page: Any, count: int) -> int:
    """Run All; a cell that fails aborts the cells queued after it, so run those again from
    the first one left, until every cell has run. Returns how many restarts it took."""
    lab_command(page, "Run", "runmenu:run-all")
    restarts = 0
    while True:
        page.wait_for_function(
            f"""() => {{
                const ps = ({PROMPTS_JS})();
                return ps.length === {count} && !ps.some(p => p.includes('*'))
                    && ps.some(p => /\\d/.test(p));
            }}""",
            timeout=600_000,
        )
        left = [i for i, text in enumerate(prompts(page)) if not any(c.isdigit() for c in text)]
        if not left:
            return restarts
        restarts += 1
        assert restarts < 30, f"cells still not run after {restarts} restarts: {left}"
        cell(page, left[0]).locator(".jp-InputPrompt").click()
        lab_command(page, "Run", "notebook:run-all-below")
        page.wait_for_function(
            "([i]) => !(" + PROMPTS_JS + ")()[i].includes('[ ]')", arg=[left[0]], timeout=LONG
        )


def save(page: Any, lab: Lab, name: str) -> None:
    """Save from JupyterLab (which signs the notebook: trusted) and wait for the file."""
    before = (lab.root / name).stat().st_mtime_ns
    lab_command(page, "File", "docmanager:save")
    deadline = time.monotonic() + 120
    while (lab.root / name).stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, "the notebook was not saved"
        page.wait_for_timeout(200)
    page.wait_for_function(
        "() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"
        "?.closest('.lm-DockPanel')?.querySelector('.jp-mod-dirty')",
        timeout=LONG,
    )


def trusted(lab: Lab, name: str) -> bool:
    nb = nbformat.read(lab.root / name, as_version=4)  # type: ignore[no-untyped-call]
    notary = NotebookNotary(data_dir=str(lab.data_dir))  # type: ignore[no-untyped-call]
    return bool(notary.check_signature(nb))  # type: ignore[no-untyped-call]


def reopen(page: Any, lab: Lab, name: str, last_cell: int) -> None:
    page.reload()
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible", timeout=LONG)
    cell(page, last_cell).locator(".jp-OutputArea-output").first.wait_for(timeout=LONG)
    wait_kernel_idle(page)


# -- poking the outputs -----------------------------------------------------------------------
