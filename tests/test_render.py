"""The one renderer (``nb_mistral._render``): every payload of the shared corpus comes out
within the allowlist on every path (answer, reasoning, tool calls, error, model name, streamed
in pieces), ordinary Markdown still looks like Markdown, and no reply can make it slow or deep.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from html_allowlist import depth, violations
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payloads import CANARY, PAYLOADS, Payload

from nb_mistral._render import (
    IncrementalMarkdown,
    ReplyRenderer,
    code_of,
    plain,
    render_markdown,
    sanitize,
    text_html,
)
from nb_mistral._render._view import DISPLAY_BUDGET, STYLE
from nb_mistral._reply import Reply

LOOPBACK = "http://127.0.0.1:9"
LINKABLE_SCHEME = re.compile(r"(?i)(?:javascript|vbscript|data)\s*:")


def concrete(payload: Payload) -> list[str]:
    """The payload's deltas, with the canary pointing at a closed loopback port."""
    chunks = payload.chunks if payload.chunks is not None else (payload.text,)
    return [chunk.replace(CANARY, LOOPBACK) for chunk in chunks]


def chunk(text: str, content: str = "content", **delta: Any) -> dict[str, Any]:
    if content == "thinking":
        delta["content"] = [{"type": "thinking", "thinking": [{"type": "text", "text": text}]}]
    else:
        delta["content"] = text
    return {"choices": [{"index": 0, "delta": delta}]}


def reply_of(*texts: str, model: str = "mistral-small-latest", kind: str = "content") -> Reply:
    reply = Reply(model)
    for text in texts:
        reply.add(chunk(text, kind))
    return reply


def assert_allowed(html: str, *, chrome: bool = False) -> None:
    assert violations(html, chrome=chrome, style=STYLE) == [], html[:2000]
    assert "<img" not in html.lower()


def view_html(renderer: ReplyRenderer) -> str:
    html = renderer.html()
    assert html.startswith('<div class="nb-mistral-reply mathjax_ignore tex2jax_ignore">')
    assert_allowed(html, chrome=True)
    assert not LINKABLE_SCHEME.search(renderer.text())
    return html


# -- the corpus, on every path ---------------------------------------------------------------

NAMES = [payload.name for payload in PAYLOADS]


@pytest.mark.parametrize("payload", PAYLOADS, ids=NAMES)
def test_payload_renders_within_the_allowlist(payload: Payload) -> None:
    text = "".join(concrete(payload))
    assert_allowed(render_markdown(text))
    assert_allowed(text_html(text))
    assert not LINKABLE_SCHEME.search(plain(text))


@pytest.mark.parametrize("payload", PAYLOADS, ids=NAMES)
def test_payload_streamed_is_within_the_allowlist_at_every_update(payload: Payload) -> None:
    chunks = concrete(payload)
    if len(chunks) == 1:  # no given split: cut it every few characters
        chunks = [chunks[0][start : start + 5] for start in range(0, len(chunks[0]), 5)]
    reply = Reply("m")
    renderer = ReplyRenderer(reply)
    for piece in chunks:
        reply.add(chunk(piece))
        view_html(renderer)
    reply.finish()
    view_html(renderer)


@pytest.mark.parametrize("payload", PAYLOADS, ids=NAMES)
def test_payload_in_every_other_part_of_a_reply(payload: Payload) -> None:
    text = "".join(concrete(payload))
    thinking = reply_of(text, kind="thinking")
    view_html(ReplyRenderer(thinking))
    named = Reply(model=text)
    named.add(
        chunk(
            "",
            tool_calls=[{"id": "1", "index": 0, "function": {"name": text, "arguments": text}}],
        )
    )
    named.finish(RuntimeError(text))
    for show_error in (True, False):
        view_html(ReplyRenderer(named, show_error=show_error))


def test_surrogates_never_stop_a_reply_and_show_as_replacement() -> None:
    reply = reply_of("smile \ud83d", "\ude00 lone \ud800 end")
    reply.finish()
    assert reply.text == "smile 😀 lone  end"  # the pair joined, the lone one dropped
    reply.text.encode("utf-8")
    renderer = ReplyRenderer(reply)
    html, text = renderer.html(), renderer.text()
    assert "😀" in html and "lone \ufffd end" in html
    html.encode("utf-8")
    text.encode("utf-8")
    repr(reply).encode("utf-8")


# -- the hypothesis properties ---------------------------------------------------------------

DANGEROUS = [
    "<img src=x onerror=alert(1)>", "<script>", "</script>", "<svg onload=alert(1)>", "<",
    ">", "`", "```", "~~~", "$", "$$", "\\begin{a}", "\\end{a}", "\\href{javascript:x}{y}",
    "[", "]", "(", ")", "![a](", "](", "javascript:", "JaVa\tScRiPt:", "&#106;", "&colon;",
    "data:text/html,", "vbscript:", "file:///", "http://x/", '"', "'", " onmouseover=",
    "alert(1)", "\n", "\r", "\r\n", "\n\n", "> ", "- ", "1. ", "| a |", "|---|", "*", "_",
    "<!--", "-->", "<![CDATA[", "]]>", "\\", "&", ";", " ", "    ", "\x00", "\ud800", "[r]: ",
    "<http://x>", "<a href=javascript:alert(1)>", "</a>", "{CANARY}", "#", "---", "===",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(DANGEROUS), max_size=40))
def test_random_dangerous_markdown_stays_within_the_allowlist(pieces: list[str]) -> None:
    text = "".join(pieces).replace(CANARY, LOOPBACK)
    assert_allowed(render_markdown(text))
    assert_allowed(render_markdown(text, typeset_math=True))
    incremental = IncrementalMarkdown(typeset_math=True)
    for end in range(0, len(text) + 1, 7):
        assert_allowed(incremental.render(text[:end]))


ORDINARY = [
    "Hello", " world", "\n", "\n\n", "# Title\n", "## Sub\n", "- item\n", "  - nested\n",
    "1. first\n", "2. second\n", "> quote\n", "```python\n", "```\n", "x = 1\n", "    code\n",
    "| a | b |\n", "|---|:-:|\n", "| 1 | 2 |\n", "*em*", "**strong**", "`code`", "$x^2$",
    "$$\n", "[link](https://example.com)", "---\n", "text\n===\n", "~~gone~~", " ",
    "[r]: https://example.com/r\n", "[a][r]", "\r\n", "* star\n", "   lazy\n",
    "- a\n", "- b\n\n", "  para in item\n", "\n  second para\n", "10. ten\n", "- $$\n",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ORDINARY), max_size=40), st.lists(st.integers(0, 400)))
def test_incremental_rendering_matches_the_full_render(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    incremental = IncrementalMarkdown()
    for cut in sorted({min(cut, len(text)) for cut in cuts}):
        incremental.render(text[:cut])
    full = render_markdown(text)
    assert incremental.render(text) == full  # the streamed view, before the final render
    assert incremental.render(text, final=True) == full


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(DANGEROUS), max_size=30), st.lists(st.integers(0, 300)))
def test_incremental_final_state_is_the_full_render(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    incremental = IncrementalMarkdown()
    for cut in sorted({min(cut, len(text)) for cut in cuts}):
        incremental.render(text[:cut])
    assert incremental.render(text, final=True) == render_markdown(text)


# -- ordinary Markdown -----------------------------------------------------------------------

ANSWER = """# Streaming

Some *emphasis*, **strong**, ~~struck~~, `inline code` and a [link](https://example.com).

1. first
2. second
   - nested

| Name | Left | Centre | Right |
|------|:-----|:------:|------:|
| a    | b    | c      | d     |

```python
def f(x):
    return "<b>" + x
```

> quoted

Euler: $e^{i\\pi} + 1 = 0$ and a price of $5 and $6.

$$
\\int_0^1 x\\,dx
$$

![a chart](https://example.com/chart.png)
"""


def test_ordinary_markdown_renders_as_expected() -> None:
    html = render_markdown(ANSWER)
    assert_allowed(html)
    for expected in (
        "<h1>Streaming</h1>",
        "<em>emphasis</em>",
        "<strong>strong</strong>",
        "<s>struck</s>",
        "<code>inline code</code>",
        '<a href="https://example.com" target="_blank" rel="noopener noreferrer nofollow">link</a>',
        "<ol>",
        "<ul>",
        "<blockquote>",
        '<th align="left">Left</th>',
        '<th align="center">Centre</th>',
        '<td align="right">d</td>',
        '<pre><code class="language-python"><span class="k">def</span>',
        '<span class="s2">"&lt;b&gt;"</span>',
        '<code class="language-math">$e^{i\\pi} + 1 = 0$</code>',
        "a price of $5 and $6.",  # currency is not math
        '<pre><code class="language-math">$$\n\\int_0^1 x\\,dx\n$$</code></pre>',
        # an image is a link to it, never fetched
        '<a href="https://example.com/chart.png" target="_blank" '
        'rel="noopener noreferrer nofollow">🖼 a chart</a>',
    ):
        assert expected in html, expected


def test_math_is_hidden_from_mathjax_and_chrome_styles_tables_and_code() -> None:
    reply = reply_of(ANSWER)
    reply.finish()
    html = view_html(ReplyRenderer(reply))
    assert "mathjax_ignore" in html and "tex2jax_ignore" in html
    assert "text-align:right" in STYLE and ".nb-mistral-reply .k," in STYLE


MATH_SPAN = '<span class="mathjax_process tex2jax_process">'


@pytest.mark.parametrize(
    "tex",
    [
        "e^{i\\pi} + 1 = 0",
        "\\frac{a}{b} \\leq \\sqrt{x_1^2 + \\alpha}",
        "\\sum_{i=1}^n i = \\frac{n(n+1)}{2}",
        "\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix}",
        "\\mathbb{R} \\to \\mathbb{R}, \\; x \\mapsto \\left( x \\right)",
    ],
)
def test_math_of_allowed_tex_goes_to_mathjax_in_cell_output(tex: str) -> None:
    html = render_markdown(f"Inline ${tex}$ and\n\n$$\n{tex}\n$$\n", typeset_math=True)
    assert html.count(MATH_SPAN) == 2, html
    assert_allowed(html)
    # and as code where nothing typesets it (the widget), or by default
    assert MATH_SPAN not in render_markdown(f"${tex}$")


@pytest.mark.parametrize(
    "tex",
    [
        "\\href{javascript:alert(1)}{x}",
        "\\url{javascript:alert(1)}",
        "\\class{jp-OutputArea}{x}",
        "\\style{background:url(http://127.0.0.1:9/x)}{x}",
        "\\cssId{main}{x}",
        "\\unicode[Arial]{x41}",
        "\\htmlData{onclick=alert(1)}{x}",
        "\\require{action}",
        "\\def\\x{\\href{javascript:alert(1)}{y}}\\x",
        "\\(x\\)",
        "\\begin{foo} x \\end{foo}",
        "\\begin x",
        "x \\text{\\href{javascript:alert(1)}{y}}",
        "{" * 40 + "x" + "}" * 40,
        "x" * 3000,
    ],
)
def test_math_with_any_other_tex_stays_code(tex: str) -> None:
    html = render_markdown(f"${tex}$ and\n\n$$\n{tex}\n$$\n", typeset_math=True)
    assert MATH_SPAN not in html
    assert html.count('<code class="language-math">') == 2


def test_the_sanitiser_checks_math_spans_itself() -> None:
    forged = [
        f"{MATH_SPAN}$\\href{{javascript:alert(1)}}{{x}}$</span>",
        f"{MATH_SPAN}<em>$x$</em></span>",
        f"{MATH_SPAN}$x$ and $y$</span>",
        '<p class="mathjax_process">$\\href{javascript:alert(1)}{x}$</p>',
        '<code class="mathjax_process">$x$</code>',
    ]
    for html in forged:
        cleaned = sanitize(html)
        assert "_process" not in cleaned, cleaned
    assert sanitize(f"{MATH_SPAN}$x^2$</span>") == f"{MATH_SPAN}$x^2$</span>"


def test_code_of_finds_the_first_code_block() -> None:
    assert code_of(ANSWER) == 'def f(x):\n    return "<b>" + x'
    assert code_of("no code here") is None


def test_plain_text_breaks_linkable_schemes_but_the_reply_keeps_them() -> None:
    reply = reply_of("see javascript:alert(1) and DATA:text/html,x and vbscript :y")
    reply.finish()
    shown = ReplyRenderer(reply).text()
    assert not LINKABLE_SCHEME.search(shown)
    assert "javascript\u200d:alert(1)" in shown
    assert reply.text == "see javascript:alert(1) and DATA:text/html,x and vbscript :y"


# -- issue 14: tool names, error lines with URLs, errors shown once ---------------------------


def test_tool_names_render_literally_in_code() -> None:
    reply = Reply("m")
    for index, name in enumerate(("get_weather", "odd`name*_")):
        call = {"id": str(index), "index": index, "function": {"name": name, "arguments": "{}"}}
        reply.add(chunk("", tool_calls=[call]))
    reply.finish()
    html = ReplyRenderer(reply).html()
    assert "<code>get_weather</code>" in html
    assert "<code>odd`name*_</code>" in html
    assert "\\_" not in html and "\\`" not in html
    assert '<code class="language-json"><span class="p">{}</span>' in html


def test_error_lines_with_urls_show_the_url_as_written() -> None:
    message = "could not connect: MISTRAL_SERVER_URL=http://127.0.0.1:8765)."
    reply = reply_of("partial")
    reply.finish(ConnectionError(message))
    renderer = ReplyRenderer(reply, show_error=True)
    html, text = renderer.html(), renderer.text()
    assert "MISTRAL_SERVER_URL=http://127.0.0.1:8765)." in html
    assert "MISTRAL_SERVER_URL=http://127.0.0.1:8765)." in text
    assert "\\" not in html and "\\" not in text


def test_an_error_is_shown_once() -> None:
    message = "Mistral API error 429: rate limited"
    reply = reply_of("partial")
    reply.finish(RuntimeError(message))
    # foreground: the cell's red line names it; the view says "error" only
    foreground = ReplyRenderer(reply, show_error=False)
    assert message not in foreground.html() and message not in foreground.text()
    assert "error</em>" in foreground.html() and foreground.text().endswith("error")
    # background or chat: no cell error, so the view names it, once
    background = ReplyRenderer(reply, show_error=True)
    assert background.html().count(message) == 1
    assert background.text().count(message) == 1


def test_a_stop_is_no_error() -> None:
    import asyncio

    reply = reply_of("partial")
    reply.finish(asyncio.CancelledError())
    renderer = ReplyRenderer(reply, show_error=True)
    assert "stopped" in renderer.html() and "⚠" not in renderer.html()


# -- bounded damage --------------------------------------------------------------------------


def _timed(function: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def _baseline(size: int) -> float:
    """Time to render ordinary Markdown of ``size`` characters (the best of three)."""
    text = (ANSWER * (size // len(ANSWER) + 1))[:size]
    return min(_timed(render_markdown, text)[0] for _ in range(3))


@pytest.mark.parametrize(
    "text",
    [
        "- " * 5000 + "deep",
        ">" * 5000 + " deep",
        "1. " * 5000 + "deep",
        "> - " * 2500 + "deep",
        "*" * 5000 + "deep" + "*" * 5000,
        "[" * 5000 + "deep" + "](https://x.co)" * 5000,
        "".join("  " * level + "- deep\n" for level in range(400)),
        "![" * 10_000 + "deep",
    ],
    ids=["list", "quote", "ordered", "mixed", "emphasis", "links", "indented", "images"],
)
def test_deep_nesting_renders_flat_and_fast(text: str) -> None:
    elapsed, html = _timed(render_markdown, text)
    assert depth(html) <= 70
    assert "deep" in html
    assert_allowed(html)
    assert elapsed < 20 * _baseline(len(text)) + 0.05


def test_a_huge_reply_shows_its_head_and_says_where_the_rest_is() -> None:
    paragraph = "A paragraph of *ordinary* text with `code`, long enough to matter.\n\n"
    text = paragraph * (5_000_000 // len(paragraph))
    reply = reply_of(text)
    renderer = ReplyRenderer(reply)
    streaming, html = _timed(renderer.html)
    reply.finish()
    final, final_html = _timed(renderer.html)
    for shown in (html, final_html):
        assert len(shown) < 2 * DISPLAY_BUDGET + len(STYLE)
        assert "more characters are not shown here" in shown
    assert len(renderer.text()) < DISPLAY_BUDGET + 200
    assert reply.text == text  # the variable keeps it all
    budget = _baseline(DISPLAY_BUDGET)
    assert streaming < 5 * budget + 0.05 and final < 5 * budget + 0.05


def test_update_cost_does_not_grow_with_the_reply() -> None:
    """100,000 one-character deltas, a view update every 1,000: the last updates cost about
    what the first ones did (a full re-render would cost 10 to 100 times more)."""
    text = (ANSWER * (100_000 // len(ANSWER) + 1))[:100_000]
    reply = Reply("m")
    renderer = ReplyRenderer(reply)
    costs = []
    for index, character in enumerate(text, start=1):
        reply.add(chunk(character))
        if index % 1000 == 0:
            costs.append(_timed(renderer.html)[0])
    reply.finish()
    first, last = sorted(costs[:20])[10], sorted(costs[-20:])[10]  # medians
    full = _baseline(len(text))
    assert last < 4 * first + full / 10, (first, last, full)
    assert last < full / 3, (last, full)


def test_a_long_code_block_being_written_costs_little_per_update() -> None:
    """Pygments is slow: a long open code block is shown plain until it is finished, then
    highlighted once."""
    code = "".join(f"def f{i}(x):\n    return x * {i}\n" for i in range(2000))
    incremental = IncrementalMarkdown()
    incremental.render("```python\n" + code)
    update, html = _timed(incremental.render, "```python\n" + code + "y = 1\n")
    assert '<code class="language-python">def f0(x):' in html
    finished = "```python\n" + code + "```\n"
    highlighted, final = _timed(lambda: incremental.render(finished, final=True))
    assert '<span class="k">def</span>' in final
    assert update < highlighted / 5, (update, highlighted)


@pytest.mark.parametrize("separator", ["\n", "\n\n"], ids=["tight", "loose"])
def test_a_long_list_being_written_costs_little_per_update(separator: str) -> None:
    """A list is one block until it ends: its finished items are kept like finished blocks,
    so an update re-renders only the last item, and the result is the full render's."""
    text = "".join(f"- item {i} with *emphasis* and `code`{separator}" for i in range(3000))
    incremental = IncrementalMarkdown()
    costs = [_timed(incremental.render, text[:end])[0] for end in range(500, len(text), 500)]
    full, html = _timed(render_markdown, text)
    assert incremental.render(text) == html
    assert sorted(costs[-20:])[10] < full / 5, (sorted(costs[-20:])[10], full)
    # and a tight list that turns loose at its end is redone once, loose
    turned = "".join(f"- item {i}\n" for i in range(300)) + "\n- last\n"
    streamed = IncrementalMarkdown()
    for end in range(0, len(turned) + 1, 37):
        streamed.render(turned[:end])
    assert streamed.render(turned) == render_markdown(turned)
    assert "<li>\n<p>item 0</p>" in streamed.render(turned)
