"""Tests for nb_mistral._inert: model Markdown must reach the front end inert.

Each output is checked independently of the implementation: parsed with markdown-it
(CommonMark + tables, raw HTML enabled, every link accepted), rendered to HTML and
walked with an HTML parser, and also rendered the way JupyterLab does it (math cut
out before Markdown, pasted back afterwards).
"""

from __future__ import annotations

import html
import re
import time
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from nb_mistral._inert import _remove_math, inert_markdown

# --- an independent checker --------------------------------------------------------


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


MD = _parser()

TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "code", "pre", "a", "img",
    "ul", "ol", "li", "blockquote", "hr", "br", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ATTRS = {"href", "src", "alt", "title", "class", "style", "start"}


def bad_url(url: str, image: bool = False) -> bool:
    """Dangerous scheme after any amount of entity/percent decoding and stripping."""
    v = url
    for _ in range(4):
        w = re.sub(r"[\s\x00-\x20\x7f-\x9f]+", "", v).lower()
        if re.match(r"(javascript|vbscript|data|file):", w) and not (
            image and re.match(r"data:image/(png|gif|jpeg|webp)[;,]", w)
        ):
            return True
        v = unquote(html.unescape(v))
    return False


def walk(tokens):
    for t in tokens:
        yield t
        if t.children:
            yield from walk(t.children)


class _HTMLCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bad: list[tuple] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in TAGS:
            self.bad.append(("tag", tag))
        for k, v in attrs:
            if k not in ATTRS:
                self.bad.append(("attr", tag, k))
            if k in ("href", "src") and v is not None and bad_url(v, tag == "img"):
                self.bad.append(("url", v))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)

    def handle_comment(self, data):
        self.bad.append(("comment", data))

    def handle_decl(self, decl):
        self.bad.append(("decl", decl))

    def handle_pi(self, data):
        self.bad.append(("pi", data))

    def unknown_decl(self, data):
        self.bad.append(("decl", data))


def rendered(markdown: str) -> tuple[list, str]:
    """(problems in the HTML markdown-it renders, the text a reader sees)."""
    check = _HTMLCheck()
    check.feed(MD.render(markdown))
    check.close()
    return check.bad, "".join(check.text)


def jupyterlab_html(markdown: str) -> str:
    """Like JupyterLab: math out, Markdown to HTML, math pasted back unescaped."""
    text, math = _remove_math(markdown)
    out = MD.render(text)
    return re.sub(r"@@(\d+)@@", lambda m: math[int(m.group(1))], out)


def problems(out: str) -> list:
    found: list = []
    for t in walk(MD.parse(out)):
        if t.type in ("html_block", "html_inline"):
            found.append((t.type, t.content))
        elif t.type == "link_open" and bad_url(str(t.attrGet("href") or "")):
            found.append(("link", t.attrGet("href")))
        elif t.type == "image" and bad_url(str(t.attrGet("src") or ""), image=True):
            found.append(("image", t.attrGet("src")))
    found += rendered(out)[0]
    check = _HTMLCheck()
    check.feed(jupyterlab_html(out))
    check.close()
    found += [("jupyterlab", *b) for b in check.bad]
    # JupyterLab pastes a fence info string raw into class="language-...".
    for line in out.splitlines():
        m = re.match(r"[ >\-*+0-9.)]*(`{3,}|~{3,})(.*)", line)
        if m and '"' in m.group(2):
            found.append(("fence info quote", line))
    return found


def assert_inert(out: str) -> None:
    assert problems(out) == [], out


# --- payloads --------------------------------------------------------------------

# (payload, text the reader must still see after rendering)
PAYLOADS = [
    ("<img src=x onerror=alert(1)>", None),
    ("<script>alert(1)</script>", None),
    ("<svg onload=alert(1)>", None),
    ("<svg><script>alert(1)</script></svg>", None),
    ('<iframe srcdoc="<script>alert(1)</script>"></iframe>', None),
    ('<a href="javascript:alert(1)">x</a>', None),
    ("[x](javascript:alert(1))", None),
    ("[x]( JaVaScRiPt:alert(1))", None),
    ("[x](&#106;avascript:alert(1))", "[x](javascript:alert(1))"),
    ("[x](javascript&colon;alert(1))", "[x](javascript:alert(1))"),
    ("[x](<javascript:alert(1)>)", None),
    ("[x](java\tscript:alert(1))", "alert(1)"),
    ("[x](%6Aavascript:alert(1))", None),
    ("[x](\\&#106;avascript:alert(1))", "alert(1)"),
    ("[x][r]\n\n[r]: javascript:alert(1)", "javascript:alert(1)"),
    ("[x]\n\n[x]: <javascript:alert(1)> 'title'", "javascript:alert(1)"),
    ("![i](javascript:alert(1))", None),
    ("![i](data:image/svg+xml;base64,PHN2Zz4=)", None),
    ("[x](data:image/png;base64,iVBORw0KGgo=)", None),
    ("<javascript:alert(1)>", None),
    ("<JAVASCRIPT:alert(1)>", None),
    ("[x](vbscript:msgbox(1))", None),
    ("[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", None),
    ("[x](file:///etc/passwd)", None),
    ("<!-- hidden comment -->", None),
    ("<!DOCTYPE html>", None),
    ("<?php echo 1; ?>", None),
    ("<![CDATA[x]]>", None),
    ("<img\nsrc=x\nonerror=alert(1)>", None),
    ("<img src=x\n  onerror=alert(1)>", None),
    ("- <img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("> <b onclick=alert(1)>quoted</b>", "<b onclick=alert(1)>quoted</b>"),
    ("| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | x |", "<img src=x onerror=alert(1)>"),
    ("   <div onclick=alert(1)>x</div>", "<div onclick=alert(1)>x</div>"),
    ("<details open ontoggle=alert(1)>", None),
    ("<<img src=x onerror=alert(1)>>", None),
    ("\\<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("\\\\<img src=x onerror=alert(1)>", "\\<img src=x onerror=alert(1)>"),
    ("<style>body{display:none}</style>", None),
    ("<textarea><img src=x onerror=alert(1)></textarea>", None),
    ("<pre>\n```\n</pre>\n```\n<img src=x onerror=alert(1)>\n```", "alert(1)"),
    ("<!-- x -->\n    <img src=x onerror=alert(1)>", "alert(1)"),
    ("<div>\n\n<img src=x onerror=alert(1)>\n\n</div>", "alert(1)"),
    ("<IMG SRC=x OnError=alert(1)>", None),
    ("<img/src=x/onerror=alert(1)>", None),
    ("<a\thref=javascript:alert(1)>x</a>", None),
    # renderers that are not CommonMark (marked in JupyterLab) or that cut math out
    ("http://x.co\\<img src=x onerror=alert(1)>", "alert(1)"),
    ("www.x.co`a `<img src=x onerror=alert(1)>`", "alert(1)"),
    ("~`<img src=x onerror=alert(1)>`", "alert(1)"),
    ("~~~\nx\n~~~`\n<img src=x onerror=alert(1)>\n~~~", "alert(1)"),
    ('```py" onmouseover="alert(1)\ncode\n```', "code"),
    ('[a]($" onerror=alert(1) x="$)', "alert(1)"),
    ('![a]($" onerror=alert(1) x="$)', "alert(1)"),
    ("$\n ```$\n<img src=x onerror=alert(1)>\n ```", "alert(1)"),
    ("$ ` $ x\n<img src=x onerror=alert(1)> `", "alert(1)"),
]


def _seen(payload: str, expect: str | None) -> str:
    return _norm(expect if expect is not None else payload)


def _norm(s: str) -> str:
    """Whitespace as a reader sees it (line starts in a paragraph are trimmed)."""
    return re.sub(r"\s+", " ", s).strip()


REPLY = """# Answer

Here is what you asked for, with a list:

1. First, install the package:
   ```bash
   pip install nb_mistral
   ```
2. Then use `inert_markdown(text)` on every reply.

| Name | Value |
|------|-------|
| a    | $x^2$ |

PAYLOAD

> Quoted text with *emphasis* and a [safe link](https://example.com).

```html
<p>Some <b>literal</b> HTML in a fence</p>
```

Done.
"""


@pytest.mark.parametrize(("payload", "expect"), PAYLOADS)
def test_payload_is_inert_and_still_shown(payload: str, expect: str | None) -> None:
    out = inert_markdown(payload)
    assert_inert(out)
    _, text = rendered(out)
    assert _seen(payload, expect) in _norm(text)


@pytest.mark.parametrize(("payload", "expect"), PAYLOADS)
def test_payload_inside_a_realistic_reply(payload: str, expect: str | None) -> None:
    reply = REPLY.replace("PAYLOAD", payload)
    out = inert_markdown(reply)
    assert_inert(out)
    # The fenced HTML at the end stays literal code whenever the payload leaves
    # the block structure alone.
    if "```" not in payload and "~~~" not in payload and "<pre>" not in payload:
        assert "<p>Some <b>literal</b> HTML in a fence</p>" in out


def test_rendered_html_holds_only_markdown_tags() -> None:
    out = inert_markdown("<img src=x onerror=alert(1)> <script>x</script> <svg onload=y>")
    page = MD.render(out)
    for needle in ("<img", "<script", "<svg", "<iframe", "onerror=<"):
        assert needle not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_escaping_uses_entities_outside_code() -> None:
    assert inert_markdown("a <b>c</b>") == "a &lt;b>c&lt;/b>"
    assert inert_markdown("<!-- c -->") == "&lt;!-- c -->"
    assert inert_markdown("[x](javascript:alert(1))") == "\\[x](javascript:alert(1))"


# --- code stays literal ----------------------------------------------------------

CODE_CASES = [
    "```html\n<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n```\n",
    "~~~\n<svg onload=alert(1)>\n~~~\n",
    "````md\n```\n<b>nested</b>\n```\n````\n",
    "Some text.\n\n    <img src=x onerror=alert(1)>\n    <!-- comment -->\n",
    "Use `<img src=x onerror=alert(1)>` carefully.",
    "Tags like `<div>`, `</div>` and `<!DOCTYPE html>` (see `<br/>`).",
    "- item\n\n  ```js\n  const a = <div onClick={f}>x</div>;\n  ```\n",
    "> ```\n> <script>alert(1)</script>\n> ```\n",
    '1. Step:\n   ```html\n   <a href="javascript:void(0)">x</a>\n   ```\n',
    "```\n[x](javascript:alert(1))\n```\n",
    "Streaming, unclosed:\n\n```html\n<script>alert(1)</script>\n<img src=x on",
]


@pytest.mark.parametrize("text", CODE_CASES)
def test_code_is_kept_byte_for_byte(text: str) -> None:
    out = inert_markdown(text)
    assert out == text
    assert_inert(out)


def test_code_spans_other_renderers_may_split_are_escaped() -> None:
    # JupyterLab's `marked` does not give code spans CommonMark's precedence: a bare
    # URL or a "~" run can take the opening backtick.  Such spans are escaped inside
    # (shown with a visible "&lt;" by CommonMark renderers) rather than trusted.
    for text in (
        "www.x.co`<b>`",
        "~`<b>`",
        "a ``x ` <b>`` b",
        "| a |\n|---|\n\ntext `x | <b>`",
    ):
        out = inert_markdown(text)
        assert_inert(out)
        assert "<b>" not in out


def test_code_next_to_escaped_html() -> None:
    text = "Write `<b>` not <b>this</b>:\n\n```html\n<b>bold</b>\n```\n"
    out = inert_markdown(text)
    assert out == "Write `<b>` not &lt;b>this&lt;/b>:\n\n```html\n<b>bold</b>\n```\n"
    assert_inert(out)


# --- ordinary Markdown is untouched ----------------------------------------------

ORDINARY = [
    """# Sorting in Python

Python's built-in `sorted()` returns a **new** list, while `list.sort()` sorts *in place*.

## Example

```python
data = [3, 1, 2]
if len(data) < 5 and data[0] > 1:
    print(sorted(data))
```

- Time complexity: $O(n \\log n)$
- Stable: yes
  - Equal keys keep their order
  - See [the docs](https://docs.python.org/3/howto/sorting.html)

> Note: `key=` functions are called once per element.

| Method | Returns | In place |
|--------|---------|:--------:|
| `sorted()` | new list | no |
| `list.sort()` | `None` | yes |

![diagram](https://example.com/sort.png "Sorting")
""",
    """Here is a minimal page:

```html
<!DOCTYPE html>
<html><body onload="init()"><script>console.log("hi")</script></body></html>
```

Use the `<script>` tag for JavaScript. In JSX you write `<div className="a">`.

1. Install:
   ```bash
   npm install react
   ```
2. Create `App.jsx`:
   ```jsx
   export default function App() { return <h1>Hello {name}</h1>; }
   ```
3. Run `npm start` and open <http://localhost:3000>.
""",
    """In C++ `#include <vector>`; in Java a `List<String>`; in Rust `Vec<T>`.

The inequality $0 < x < 1$ and $a<b$ hold, and $$\\sum_{i=1}^n i = \\frac{n(n+1)}{2}$$

Links: [home](/), [anchor](#usage), [mail](mailto:a@b.com), [rel](./docs/readme.md),
https://example.com, <https://example.org> and www.example.com.
Image: ![png](data:image/png;base64,iVBORw0KGgo=)
""",
    """### Shell

Run `echo "$HOME" | grep <pattern>` or:

```sh
for f in *.txt; do cat "$f" > "${f%.txt}.bak"; done
```

Indented code:

    x = 1 if a < b else 2

Escapes: \\*not emphasis\\*, 5 \\< 6, a\\_b. Arrows -> <- <=> and a <= b, 3 < 4 > 2.

---

*Emphasis*, **strong**, ***both***, ~~strike~~ and `code`.

- [ ] todo
- [x] done
""",
    """Math block:

$$
\\begin{aligned}
f(x) &= x^2 \\\\
g(x) &< h(x)
\\end{aligned}
$$

Inline \\\\(a^2 + b^2 = c^2\\\\), $x_{i}$ and prices like $5 and $10.

| a | b |
|---|---|
| `x | y` | 1 |
| <-> | -> |
""",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_markdown_is_unchanged(text: str) -> None:
    assert inert_markdown(text) == text
    assert_inert(text)


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_markdown_prefixes_are_unchanged(text: str) -> None:
    for k in range(0, len(text), 7):
        prefix = text[:k]
        out = inert_markdown(prefix)
        assert_inert(out)


# --- streaming -------------------------------------------------------------------

STREAM = (
    REPLY.replace("PAYLOAD", "A first part with <b>bold</b> HTML and `<i>` code.")
    + REPLY.replace(
        "PAYLOAD",
        "Careful: <img src=x onerror=alert(1)> and [click](javascript:alert(1)) and "
        "`<b>` and <svg\nonload=alert(1)> and ![i](java&#115;cript:x).\n\n"
        "<details open ontoggle=alert(1)><summary>x</summary>\n\n"
        "[ref]: javascript:alert(2)\n\nSee [it][ref]. <!-- gone -->",
    )
    + "\n```js\nconst s = '<script>alert(1)</script>';\n```\n"
    + "Last: <a href=x onmouseover=alert(1)>hover</a> `code <i>`\n\n"
    + "1. one\n   ```html\n   <svg onload=alert(1)>\n   ```\n2. two $x<y$ and $$a$$\n"
)


def test_stream_text_is_about_2kb() -> None:
    assert 1000 < len(STREAM) < 3000


def test_every_prefix_of_a_stream_is_inert() -> None:
    for k in range(len(STREAM) + 1):
        out = inert_markdown(STREAM[:k])
        assert problems(out) == [], (k, STREAM[:k])


def test_half_tag_at_the_end_is_not_live_once_completed() -> None:
    for partial in (
        "<img src=x on",
        "<img",
        "<",
        "<scr",
        "[x](javascr",
        "<img src=x onerror=alert(1)",
    ):
        out = inert_markdown("Text " + partial)
        assert_inert(out)
        assert_inert(inert_markdown("Text " + partial + ">"))


# --- robustness ------------------------------------------------------------------

ODD = [
    "",
    "\x00<img src=x onerror=alert(1)>\x00",
    "\ud800<b>",
    "\r\n<b>x</b>\r<i>y</i>\r\n",
    "\u2028<b>\u2029",
    "[" * 300 + "<b>" + "]" * 300,
    ">" * 80 + " <img src=x onerror=alert(1)>",
    "- " * 80 + "<img src=x onerror=alert(1)>",
    "`" * 1000 + "<b>",
    "\\" * 501 + "<img src=x onerror=alert(1)>",
    "*" * 2000,
    "$" * 500 + '"' * 500,
    "@@0@@ @@99@@ $x$ <b>",
    "\t<b>\n\t\t<i>\n",
]


@pytest.mark.parametrize("text", ODD)
def test_odd_inputs_never_raise_and_stay_inert(text: str) -> None:
    out = inert_markdown(text)
    assert isinstance(out, str)
    assert_inert(out)


ALPHABET = st.sampled_from(
    [
        *"<>[]()!/\\:&#;`$\"'|~*_- \n\n\t.abijx01",
        *("javascript", "script", "img", "svg", "onerror=", "&#106;", "```", "    ", "> "),
        *("- ", "http://a.b", "www.c.d", "<!--", "-->", "](", "]: ", "@@0@@", "\\\\(", "data:"),
    ]
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_random_text_is_inert(text: str) -> None:
    out = inert_markdown(text)
    assert problems(out) == [], out


def test_is_roughly_linear_and_fast_for_plain_replies() -> None:
    text = (ORDINARY[0] * 40)[:100_000]
    inert_markdown(text)
    start = time.perf_counter()
    inert_markdown(text)
    assert time.perf_counter() - start < 2.0
