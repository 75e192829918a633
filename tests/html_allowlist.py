"""An independent check of rendered HTML: parsed back with the standard library's parser, it
may hold only the tags, attributes, classes and URL schemes of the renderer's allowlist (plus
the chrome the view writes around it), never deeper than a bound."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# what Markdown produces (the sanitiser's allowlist, written out again on purpose)
CONTENT_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "ul", "ol", "li",
    "pre", "code", "span", "em", "strong", "s", "del", "a", "table", "thead", "tbody",
    "tr", "th", "td",
}  # fmt: skip
# and what the view and the widget write around sanitised content
CHROME_TAGS = {"div", "details", "summary", "style"}
CONTENT_ATTRIBUTES = {
    "a": {"href", "target", "rel"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},
    "span": {"class"},
}
CHROME_ATTRIBUTES = {"class", "open", "style"}
SCHEMES = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]+|[a-z0-9]{1,4}")
VOID = {"br", "hr"}
MATH_CLASS = "mathjax_process tex2jax_process"  # the one class that lets MathJax in
# TeX that makes links, styles, classes, ids, loads packages or defines macros in MathJax
DANGEROUS_TEX = re.compile(
    r"\\(href|url|class|style|cssId|unicode|htmlData|data|require|mmlToken|toggle|texttip|"
    r"tooltip|mathtip|action|def|newcommand|renewcommand|let|includegraphics|color|bbox|"
    r"enclose|[\[\]()])",
)
MAX_DEPTH = 80


class _Check(HTMLParser):
    def __init__(self, *, chrome: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.chrome = chrome
        self.problems: list[str] = []
        self.depth = 0
        self.max_depth = 0
        self.in_style = False
        self.styles: list[str] = []
        self.math: list[str] | None = None  # the text of an open MathJax span

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        chrome = self.chrome and tag in CHROME_TAGS
        if tag not in CONTENT_TAGS and not chrome:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            allowed = CONTENT_ATTRIBUTES.get(tag, set())
            chrome_attribute = self.chrome and name in CHROME_ATTRIBUTES
            if name.startswith("on") or (name not in allowed and not chrome_attribute):
                self.problems.append(f"attribute {name} on <{tag}>")
            elif name == "style" and not chrome:
                self.problems.append(f"style on <{tag}>")
            elif name == "class" and tag == "p" and not (value or "").startswith("nb-mistral-"):
                self.problems.append(f"class {value!r} on <p>")
            if name == "href" and not SCHEMES.match(value or ""):
                self.problems.append(f"href {value!r}")
            if name == "class" and tag == "span" and value == MATH_CLASS:
                self.math = []
            elif name == "class" and tag in ("code", "span"):
                for word in (value or "").split():
                    if not CLASS.fullmatch(word):
                        self.problems.append(f"class {word!r} on <{tag}>")
            if name == "class" and "process" in (value or "") and value != MATH_CLASS:
                self.problems.append(f"MathJax process class {value!r}")
        if tag == "style":
            self.in_style = True
        if self.math is not None and not (tag == "span" and dict(attrs).get("class") == MATH_CLASS):
            self.problems.append(f"<{tag}> inside a MathJax span")
        if tag not in VOID:
            self.depth += 1
            self.max_depth = max(self.max_depth, self.depth)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.depth -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self.in_style = False
        if tag == "span" and self.math is not None:
            tex = "".join(self.math)
            self.math = None
            inner = tex.strip("$")
            if not (tex.startswith("$") and tex.endswith("$")) or "$" in inner:
                self.problems.append(f"MathJax span not one formula: {tex[:60]!r}")
            if DANGEROUS_TEX.search(tex):
                self.problems.append(f"dangerous TeX to MathJax: {tex[:60]!r}")
        if tag not in VOID:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.in_style:
            self.styles.append(data)
        if self.math is not None:
            self.math.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data[:40]!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl[:40]!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data[:40]!r}")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration {data[:40]!r}")


def violations(html: str, *, chrome: bool = False, style: str | None = None) -> list[str]:
    """Everything in ``html`` outside the allowlist. ``chrome``: the view's own markup may be
    there too; then every ``<style>`` must be exactly ``style`` (ours)."""
    check = _Check(chrome=chrome)
    check.feed(html)
    check.close()
    problems = list(check.problems)
    if check.max_depth > MAX_DEPTH:
        problems.append(f"nesting depth {check.max_depth}")
    for sheet in check.styles:
        if style is None or f"<style>{sheet}</style>" != style:
            problems.append(f"a stylesheet that is not ours: {sheet[:60]!r}")
    return problems


def depth(html: str) -> int:
    check = _Check(chrome=True)
    check.feed(html)
    check.close()
    return check.max_depth
