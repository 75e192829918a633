"""What a page did with untrusted outputs: dialogs, popups, navigations, dangerous markup.

``Watch`` listens to a Playwright browser context (dialogs in every page, new pages, main-frame
navigations away from JupyterLab, which it blocks and records); the ``*_JS`` scripts look at
and poke one notebook cell's outputs from inside the page: markup outside the allowlist,
synthetic hover/focus events on every element, the links to click.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab_harness import cell
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from reply_server import SeenRequest, tag_of

# Markup that must never come out of a reply (inside MathJax's own output, only its links).
SCAN_JS = r"""
(cellEl) => {
  const allowed = new Set(['http:', 'https:', 'mailto:']);
  const forbidden = new Set(['SCRIPT', 'IFRAME', 'FRAME', 'OBJECT', 'EMBED', 'SVG', 'MATH',
    'IMG', 'IMAGE', 'VIDEO', 'AUDIO', 'SOURCE', 'PICTURE', 'LINK', 'META', 'BASE', 'STYLE',
    'FORM', 'INPUT', 'BUTTON', 'TEXTAREA', 'SELECT', 'MARQUEE', 'APPLET', 'PORTAL']);
  const urlAttrs = ['href', 'xlink:href', 'src', 'srcset', 'action', 'formaction', 'poster',
    'data', 'srcdoc', 'background', 'ping'];
  // nb_mistral's own stylesheet: the first child of its reply container, scoped rules only
  const ownStyle = (el) => el.parentElement !== null
    && el.parentElement.classList.contains('nb-mistral-reply')
    && el.parentElement.firstElementChild === el
    && el.textContent.startsWith('.nb-mistral-reply.nb-mistral-reply ')
    && !/url\(|@import|expression|javascript/i.test(el.textContent);
  const found = [];
  const outputs = cellEl.querySelectorAll('.jp-OutputArea-output');
  for (const out of outputs) {
    for (const el of out.querySelectorAll('*')) {
      const content = el.closest('.jp-RenderedHTMLCommon, .widget-html-content');
      const inMath = el.closest('mjx-container') !== null;
      const tag = el.tagName.toUpperCase();
      if (tag === 'STYLE' && ownStyle(el)) continue;
      if (content !== null && !inMath && forbidden.has(tag)) {
        found.push('tag ' + el.outerHTML.slice(0, 300));
      }
      for (const attr of Array.from(el.attributes)) {
        const name = attr.name.toLowerCase();
        if (name.startsWith('on')) {
          found.push('handler ' + el.outerHTML.slice(0, 300));
        } else if (urlAttrs.includes(name) && content !== null) {
          const value = attr.value.trim();
          if (name === 'href' && value.startsWith('#')) continue;
          let scheme = '';
          try { scheme = new URL(value, document.baseURI).protocol; } catch (e) { scheme = '?'; }
          if (name !== 'href' || !allowed.has(scheme)) {
            found.push(name + ' ' + el.outerHTML.slice(0, 300));
          }
        }
      }
    }
  }
  return found;
}
"""

# Every way a pointer or the keyboard focus can reach an element, sent to each element.
HOVER_JS = """
(cellEl) => {
  cellEl.scrollIntoView({block: 'center'});
  const kinds = ['pointerover', 'pointerenter', 'mouseover', 'mouseenter', 'pointermove',
    'mousemove', 'pointerdown', 'mousedown', 'pointerup', 'mouseup', 'mouseout', 'mouseleave',
    'focusin', 'focus', 'focusout', 'blur', 'wheel', 'dragstart', 'copy', 'toggle'];
  let count = 0;
  for (const out of cellEl.querySelectorAll('.jp-OutputArea-output')) {
    for (const el of out.querySelectorAll('*')) {
      if (el.matches('button, .widget-button, select, option')) continue;  // our widget's own
      count += 1;
      for (const kind of kinds) {
        const init = {bubbles: true, cancelable: true, view: window};
        const event = kind.startsWith('pointer') ? new PointerEvent(kind, init)
          : kind.startsWith('focus') || kind === 'blur' ? new FocusEvent(kind, init)
          : kind === 'wheel' ? new WheelEvent(kind, init)
          : kind.startsWith('mouse') ? new MouseEvent(kind, init) : new Event(kind, init);
        el.dispatchEvent(event);
      }
      if (typeof el.focus === 'function') el.focus();
    }
  }
  return count;
}
"""

# The links of the outputs, but not the file links JupyterLab puts in a traceback.
LINK_SELECTOR = ".jp-OutputArea-output:not([data-mime-type*='stderr']) a[href]"
LINKS_JS = f"""
(cellEl) => Array.from(cellEl.querySelectorAll("{LINK_SELECTOR}"))
  .map(a => [a.getAttribute('href'), a.getAttribute('target') || ''])
"""


@dataclass(frozen=True)
class Dialog:
    kind: str
    message: str
    phase: str
    cell: int | None  # the cell being poked when it opened, if any


@dataclass
class Watch:
    """Everything the context's pages did that a reply must not make them do."""

    lab_url: str
    phase: str = "render"
    cell: int | None = None
    dialogs: list[Dialog] = field(default_factory=list)
    popups: list[Any] = field(default_factory=list)
    blocked_navigations: list[tuple[str, str]] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    tabs: list[Any] = field(default_factory=list)  # the pages we opened (not popups)

    def attach(self, context: Any) -> None:
        context.on("page", self._on_page)
        context.route(lambda url: not url.startswith(self.lab_url), self._on_foreign_request)

    def adopt(self, page: Any) -> None:
        """``page`` is one of ours (opened by the test), not a popup."""
        if page in self.popups:
            self.popups.remove(page)
        self.tabs.append(page)

    def _on_page(self, page: Any) -> None:
        page.on("dialog", self._on_dialog)
        page.on("crash", lambda _page: self.crashed.append(self.phase))
        self.popups.append(page)

    def _on_dialog(self, dialog: Any) -> None:
        if dialog.type == "beforeunload":  # JupyterLab's own "leave the page?"
            dialog.accept()
            return
        self.dialogs.append(Dialog(dialog.type, dialog.message, self.phase, self.cell))
        dialog.dismiss()

    def _on_foreign_request(self, route: Any, request: Any) -> None:
        """Requests off JupyterLab's origin go through (the canary counts them), except a
        navigation of the notebook's own tab away from JupyterLab: blocked, recorded."""
        if request.is_navigation_request() and self._in_a_tab(request):
            self.blocked_navigations.append((self.phase, request.url))
            route.abort()
        else:
            route.continue_()

    def _in_a_tab(self, request: Any) -> bool:
        try:
            frame = request.frame
        except Exception:
            return False
        return frame.parent_frame is None and frame.page in self.tabs


def dialog_tag(message: str) -> int | None:
    """The cell tag a tagged ``alert(<tag>)`` carries."""
    return int(message) if re.fullmatch(r"\d{4}", message.strip()) else None


Requests = Callable[[], list[SeenRequest]]
Label = Callable[[int | None], str]  # a cell tag -> the payload's name, for reports


@dataclass
class Findings:
    """What happened in one phase, keyed by payload name where it can be told."""

    phase: str
    render_requests: list[str] = field(default_factory=list)
    hover_requests: list[str] = field(default_factory=list)
    click_requests: list[str] = field(default_factory=list)
    dialogs: dict[str, list[str]] = field(default_factory=dict)
    markup: dict[str, list[str]] = field(default_factory=dict)
    navigations: list[str] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)
    links_clicked: int = 0
    elements_hovered: int = 0

    def fired(self) -> set[str]:
        """The payloads that did anything at all (a dialog, markup, a request)."""
        named = set(self.dialogs) | set(self.markup)
        for url in self.render_requests + self.hover_requests + self.click_requests:
            named.add(url.split(" ", 1)[0])
        return named

    def unexplained_click_requests(self) -> list[str]:
        """Canary requests after clicks other than the page a clicked link opened (and the
        icon the browser asks that page's server for)."""
        opened = " ".join(self.popups)
        return [
            r
            for r in self.click_requests
            if not r.split(" ")[1].startswith("/favicon.ico")
            and ("dest=document" not in r or r.split(" ")[1] not in opened)
        ]


def _canary_since(requests: Requests, label: Label, start: int) -> list[str]:
    return [
        f"{label(tag_of(r.path))} {r.path} dest={r.headers.get('sec-fetch-dest')}"
        for r in requests()[start:]
    ]


def _without_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def probe(
    page: Any, watch: Watch, cells: dict[int, int], label: Label, requests: Requests, phase: str
) -> Findings:
    """Look at, hover and click everything in the reply cells (``cells``: index -> tag)."""
    found = Findings(phase)
    start_dialogs, start_nav = len(watch.dialogs), len(watch.blocked_navigations)
    tab_url = _without_fragment(page.url)
    found.render_requests = _canary_since(requests, label, 0)
    for index, tag in cells.items():
        markup = cell(page, index).evaluate(SCAN_JS)
        if markup:
            found.markup[label(tag)] = markup
    mark = len(requests())
    watch.phase = f"{phase}:hover"
    for index in cells:
        watch.cell = index
        found.elements_hovered += int(cell(page, index).evaluate(HOVER_JS))
    found.hover_requests = _canary_since(requests, label, mark)
    mark = len(requests())
    watch.phase = f"{phase}:click"
    for index, tag in cells.items():
        watch.cell = index
        links = cell(page, index).locator(LINK_SELECTOR)
        for number, (_href, target) in enumerate(cell(page, index).evaluate(LINKS_JS)):
            found.links_clicked += 1
            _click(page, links.nth(number), opens_page=target == "_blank", found=found)
            _settle_popups(watch, found, label(tag))
            _close_lab_dialogs(page, found, label(tag))
            if _without_fragment(page.url) != tab_url:
                found.navigations.append(f"{label(tag)} -> {page.url}")
                page.go_back()
    found.click_requests = _canary_since(requests, label, mark)
    watch.cell = None
    for dialog in watch.dialogs[start_dialogs:]:
        fired_tag: int | None = dialog_tag(dialog.message)
        if fired_tag is None and dialog.cell is not None:
            fired_tag = cells.get(dialog.cell)
        found.dialogs.setdefault(label(fired_tag), []).append(
            f"{dialog.kind}({dialog.message!r}) during {dialog.phase}"
        )
    found.navigations += [f"{p} -> {url}" for p, url in watch.blocked_navigations[start_nav:]]
    return found


def _click(page: Any, link: Any, *, opens_page: bool, found: Findings) -> None:
    """A real click; for a link that opens a page, until that page exists; else a moment for
    whatever the click set off (a ``javascript:`` URL) to run."""
    try:
        if opens_page:
            try:
                with page.context.expect_page(timeout=5_000):
                    link.click(timeout=5_000, no_wait_after=True, force=True)
            except PlaywrightTimeoutError:
                pass
        else:
            link.click(timeout=5_000, no_wait_after=True, force=True)
            page.wait_for_timeout(200)
    except Exception as exc:
        found.popups.append(f"click failed: {exc!r}"[:200])


def _settle_popups(watch: Watch, found: Findings, name: str) -> None:
    """Let each page a click opened load (so its requests happen), note it, close it."""
    while watch.popups:
        popup = watch.popups.pop()
        with contextlib.suppress(Exception):
            popup.wait_for_load_state("load", timeout=10_000)
        found.popups.append(f"{name} opened {popup.url}")
        popup.close()


def _close_lab_dialogs(page: Any, found: Findings, name: str) -> None:
    """A click that made JupyterLab ask something (e.g. open a file): noted, dismissed."""
    dialogs = page.locator(".jp-Dialog")
    while dialogs.count():
        found.popups.append(f"{name} JupyterLab asked: {dialogs.first.get_attribute('aria-label')}")
        page.keyboard.press("Escape")
        dialogs.first.wait_for(state="detached", timeout=10_000)
