"""Real-browser tests: JupyterLab 4 driven by Playwright in Debian's Chromium.

One JupyterLab server (and one headless Chromium) for the module, its kernels talking to an
in-process emulator that streams slowly enough for a person, and a test to watch. Each test
opens its own notebook, runs its cells with Shift+Enter and looks at what the page shows.
Screenshots land in ``artifacts/screenshots/`` (gitignored), also when a test fails.

Chromium is required, not optional: without it these tests fail and say how to install it
(``apt-get install chromium``), or where to point ``NB_MISTRAL_CHROMIUM``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from nb_mistral.emulator import Emulator

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKENS_PER_SECOND = 30  # slow enough to watch a reply grow, fast enough for CI
LONG = 120_000  # ms: generous deadlines for a 2-core CI machine
XSS_FLAGS = ("__xss", "__xss2", "__xss3", "__xss4")
XSS_PROMPT = (
    'Payloads: <img src=x onerror="window.__xss=1"> and <script>window.__xss2=1</script>\n'
    'and <svg onload="window.__xss3=1"> and [click me](javascript:window.__xss4=1)'
)

NOTEBOOKS: dict[str, list[str]] = {
    "stream.ipynb": [
        "%load_ext nb_mistral",
        "%%mistral -o answer\nExplain in a few points why streaming replies feel fast.",
    ],
    "xss.ipynb": [
        "%load_ext nb_mistral",
        "%%mistral -o payload --raw\n" + XSS_PROMPT,
    ],
    "stop.ipynb": [
        "%load_ext nb_mistral",
        "%%mistral --bg -o long --max-tokens 600\nA long answer, please: I will stop it early.",
        "print('state:', long.done, bool(long.text), long.stopped)",
    ],
    "chat.ipynb": [
        "import nb_mistral\n\nchat = nb_mistral.ChatWidget(model='mistral-small-latest')\nchat",
        "print('chat:', chat.last_reply.done, len(chat.messages), chat.last_reply.model)",
    ],
}

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
    emulator: Emulator
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def _write_notebooks(root: Path) -> None:
    for name, sources in NOTEBOOKS.items():
        nb = new_notebook(cells=[new_code_cell(source) for source in sources])
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nbformat.write(nb, root / name)


def _write_settings(settings: Path) -> None:
    for relative, values in LAB_SETTINGS.items():
        path = settings / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server on a free loopback port, its kernels pointed at an emulator."""
    chromium_path()  # fail first, and clearly, when there is no browser
    base = tmp_path_factory.mktemp("lab")
    root, settings, runtime = base / "notebooks", base / "settings", base / "runtime"
    for folder in (root, settings, runtime):
        folder.mkdir()
    _write_notebooks(root)
    _write_settings(settings)
    token, port = secrets.token_hex(16), free_port()
    emulator = Emulator(tokens_per_second=TOKENS_PER_SECOND).start()
    env = {
        **os.environ,
        "MISTRAL_SERVER_URL": emulator.url,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
    }
    env.pop("MISTRAL_API_KEY", None)
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
    try:
        with log.open("wb") as out:
            server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    except BaseException:
        emulator.stop()
        raise
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"JupyterLab exited ({server.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(answers, 120, "JupyterLab to answer", interval=0.25)
        yield Lab(url, token, root, emulator, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        emulator.stop()


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page; a screenshot of it is saved after the test, whatever the outcome."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(LONG)
    try:
        yield page
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
        finally:
            context.close()


# -- driving a notebook ---------------------------------------------------------------------


def open_notebook(page: Any, lab: Lab, name: str) -> None:
    """Open a notebook and wait until its kernel is started and idle."""
    page.goto(lab.notebook_url(name))
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible", timeout=LONG)
    wait_kernel_idle(page)


def wait_kernel_idle(page: Any) -> None:
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
        timeout=LONG,
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


# The sampler runs in the page: it reads the output's text length every few milliseconds until
# the cell is done (or the deadline passes) and returns every length it saw change to.
SAMPLE_GROWTH = """
async ([cellEl, until, ms, deadline]) => {
  const text = () => Array.from(cellEl.querySelectorAll('.jp-OutputArea-output'))
    .map(o => o.innerText).join('\\n');
  const prompt = cellEl.querySelector('.jp-InputPrompt');
  const lengths = [];
  const end = Date.now() + deadline;
  let quiet = 0;
  while (Date.now() < end) {
    const n = text().length;
    if (lengths.length === 0 || lengths[lengths.length - 1] !== n) { lengths.push(n); quiet = 0; }
    else quiet += ms;
    if (until === 'done' && /\\[\\d+\\]/.test(prompt.textContent) && quiet >= 500) break;
    if (until === 'quiet' && quiet >= 2000) break;
    await new Promise(r => setTimeout(r, ms));
  }
  return lengths;
}
"""


def sample_growth(page: Any, index: int, until: str = "done", seconds: float = 120) -> list[int]:
    handle = cell(page, index).element_handle()
    return page.evaluate(SAMPLE_GROWTH, [handle, until, 25, int(seconds * 1000)])


def growth_steps(lengths: list[int]) -> list[int]:
    """The lengths that were new highs, before the final length: the visible steps of growth."""
    final, steps = lengths[-1] if lengths else 0, []
    for n in lengths:
        if 0 < n < final and (not steps or n > steps[-1]):
            steps.append(n)
    return steps


# -- tests ----------------------------------------------------------------------------------


def test_reply_streams_visibly(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "stream.ipynb")
    run_cell(page, 0)
    wait_cell_done(page, 0)
    run_cell(page, 1)
    lengths = sample_growth(page, 1)
    final = output_text(page, 1)
    assert "Emulated reply" in final, final
    assert "why streaming replies feel fast" in final, final
    steps = growth_steps(lengths)
    assert len(steps) >= 5, f"the reply did not grow visibly: lengths seen {lengths}"


def test_reply_payloads_stay_inert(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "xss.ipynb")
    run_cell(page, 0)
    wait_cell_done(page, 0)
    run_cell(page, 1)
    wait_cell_done(page, 1)
    output = cell(page, 1).locator(".jp-OutputArea")
    text = output.inner_text()

    def flags() -> dict[str, Any]:
        return page.evaluate(
            "names => Object.fromEntries(names.map(n => [n, String(window[n])]))",
            list(XSS_FLAGS),
        )

    rendered = ".jp-OutputArea-output"  # what the outputs rendered, not JupyterLab's chrome
    elements = output.evaluate(
        """(el, rendered) => Array.from(el.querySelectorAll(rendered)).flatMap(o =>
              Array.from(o.querySelectorAll('img, script, svg, iframe, object, embed')))
              .map(e => e.outerHTML)""",
        rendered,
    )
    assert elements == [], f"markup from the model reached the page: {elements}"
    handlers = output.evaluate(
        """(el, rendered) => Array.from(el.querySelectorAll(rendered + ' *'))
              .flatMap(e => Array.from(e.attributes).filter(a => a.name.startsWith('on'))
              .map(a => e.tagName + ' ' + a.name))""",
        rendered,
    )
    assert handlers == [], f"event handlers in the output: {handlers}"
    unset = {name: "undefined" for name in XSS_FLAGS}
    assert flags() == unset, "a script from the reply ran"
    # The reply quotes the prompt: so the payloads reached the page, as text.
    assert "window.__xss=1" in text and "window.__xss2=1" in text, text
    assert "window.__xss3=1" in text and "click me" in text, text

    before = page.url
    hrefs = output.evaluate(
        """el => Array.from(el.querySelectorAll('a')).map(a => {
              const href = a.getAttribute('href');
              // ordinary links must not navigate away; javascript: ones are left to run
              a.addEventListener('click', e => {
                if (!/^javascript:/i.test(a.href)) e.preventDefault();
              });
              a.click();
              return href;
           })"""
    )
    page.wait_for_timeout(500)  # let any script a click might have queued run
    assert page.url == before
    assert flags() == unset, f"a script ran when a link was clicked (links: {hrefs})"
    assert not any(href and href.lower().startswith("javascript:") for href in hrefs), hrefs


def test_stop_button_keeps_partial_reply(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "stop.ipynb")
    run_cell(page, 0)
    wait_cell_done(page, 0)
    disconnects = lab.emulator.disconnects
    run_cell(page, 1)
    wait_cell_done(page, 1)  # --bg: the cell returns at once, the reply streams on
    stop = cell(page, 1).get_by_role("button", name="Stop")
    stop.wait_for(state="visible")
    page.wait_for_function(  # a few words in: well before the 600 tokens are through
        "el => el.innerText.includes('This is turn')",
        arg=cell(page, 1).locator(".jp-OutputArea").element_handle(),
    )
    stop.click()
    assert lab.emulator.wait_for_disconnect(timeout=30, n=disconnects + 1), (
        "Stop did not close the connection"
    )
    lengths = sample_growth(page, 1, until="quiet", seconds=30)
    assert len(lengths) <= 2, f"the reply kept growing after Stop: {lengths}"
    partial = output_text(page, 1)
    assert "Emulated reply" in partial and "stopped" in partial, partial
    run_cell(page, 2)
    wait_cell_done(page, 2)
    assert "state: True True True" in output_text(page, 2)


def test_chat_widget_streams_a_reply(page: Any, lab: Lab) -> None:
    open_notebook(page, lab, "chat.ipynb")
    run_cell(page, 0)
    wait_cell_done(page, 0)
    widget = cell(page, 0).locator(".jp-OutputArea-output .widget-box").first
    widget.wait_for(state="visible")
    box = widget.locator("textarea, input[type='text']").first
    box.fill("Hello widget, stream me a reply")
    widget.get_by_role("button", name="Send").click()
    page.wait_for_function(
        "el => el.innerText.includes('Emulated reply')",
        arg=cell(page, 0).locator(".jp-OutputArea").element_handle(),
    )
    lengths = sample_growth(page, 0, until="quiet", seconds=120)
    transcript = output_text(page, 0)
    assert "Hello widget, stream me a reply" in transcript, transcript
    assert "Emulated reply" in transcript, transcript
    assert len(growth_steps(lengths)) >= 3, f"the transcript did not stream: lengths {lengths}"
    run_cell(page, 1)
    wait_cell_done(page, 1)
    assert "chat: True 2 mistral-small-latest" in output_text(page, 1)
