"""Real-browser tests: JupyterLab 4 driven by Playwright in Debian's Chromium.

One JupyterLab server (and one headless Chromium) for the module, its kernels talking to an
in-process emulator that streams slowly enough for a person, and a test to watch. Each test
opens its own notebook, runs its cells with Shift+Enter and looks at what the page shows.
Screenshots land in ``artifacts/screenshots/`` (gitignored), also when a test fails.

Chromium is required, not optional: without it these tests fail and say how to install it
(``apt-get install chromium``), or where to point ``NB_MISTRAL_CHROMIUM``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from lab_harness import (
    LONG,
    Lab,
    cell,
    launch_chromium,
    open_notebook,
    output_text,
    run_cell,
    running_lab,
    wait_cell_done,
)
from nbformat.v4 import new_code_cell, new_notebook

from nb_mistral.emulator import Emulator

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
TOKENS_PER_SECOND = 30  # slow enough to watch a reply grow, fast enough for CI
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


def _write_notebooks(root: Path) -> None:
    for name, sources in NOTEBOOKS.items():
        nb = new_notebook(cells=[new_code_cell(source) for source in sources])
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nbformat.write(nb, root / name)


@pytest.fixture(scope="module")
def lab_emulator() -> Iterator[Emulator]:
    """The in-process emulator the lab's kernels talk to."""
    with Emulator(tokens_per_second=TOKENS_PER_SECOND) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_emulator: Emulator) -> Iterator[Lab]:
    """A JupyterLab server on a free loopback port, its kernels pointed at the emulator."""
    base = tmp_path_factory.mktemp("lab")
    (base / "notebooks").mkdir()
    _write_notebooks(base / "notebooks")
    with running_lab(base, lab_emulator.url) as running:
        yield running


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


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


def test_stop_button_keeps_partial_reply(page: Any, lab: Lab, lab_emulator: Emulator) -> None:
    open_notebook(page, lab, "stop.ipynb")
    run_cell(page, 0)
    wait_cell_done(page, 0)
    disconnects = lab_emulator.disconnects
    run_cell(page, 1)
    wait_cell_done(page, 1)  # --bg: the cell returns at once, the reply streams on
    stop = cell(page, 1).get_by_role("button", name="Stop")
    stop.wait_for(state="visible")
    page.wait_for_function(  # a few words in: well before the 600 tokens are through
        "el => el.innerText.includes('This is turn')",
        arg=cell(page, 1).locator(".jp-OutputArea").element_handle(),
    )
    stop.click()
    assert lab_emulator.wait_for_disconnect(timeout=30, n=disconnects + 1), (
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
