"""Untrusted text that must stay inert wherever nb_mistral shows it: a corpus shared by the
unit tests of the renderer and the browser tests.

Script payloads call ``alert(1)`` (or ``confirm``/``prompt``), which the browser test catches as
a dialog. Payloads that would make a browser fetch something point at the literal placeholder
``{CANARY}``: the browser test replaces it with a loopback URL and counts the requests to it
(unit tests may use ``http://127.0.0.1:9``). ``chunks``, when given, is how the text arrives
as stream deltas (their concatenation is ``text``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

CANARY = "{CANARY}"


@dataclass(frozen=True)
class Payload:
    name: str
    text: str
    chunks: tuple[str, ...] | None = None


def _split(text: str, *cuts: int) -> tuple[str, ...]:
    """``text`` cut at the given offsets: how a stream might deliver it."""
    bounds = [0, *cuts, len(text)]
    return tuple(text[start:end] for start, end in itertools.pairwise(bounds))


def _by_char(text: str) -> tuple[str, ...]:
    return tuple(text)


IMG = "<img src=x onerror=alert(1)>"

_TAG_SPELLINGS = {
    "img": IMG,
    "img-upper": "<IMG SRC=x OnError=alert(1)>",
    "img-slash": "<img/src=x/onerror=alert(1)>",
    "img-newlines": "<img\nsrc=x\nonerror=alert(1)>",
    "img-tab": "<img\tsrc=x\tonerror=alert(1)>",
    "img-quoted": '<img src="x" onerror="alert(1)">',
    "img-backtick": "<img src=x onerror=alert`1`>",
    "img-entity-handler": "<img src=x onerror=&#97;lert(1)>",
    "img-unclosed": "<img src=x onerror=alert(1)//",
    "script": "<script>alert(1)</script>",
    "script-upper": "<SCRIPT>confirm(1)</SCRIPT>",
    "script-src": f'<script src="{CANARY}/s.js"></script>',
    "svg-onload": "<svg onload=alert(1)>",
    "svg-script": "<svg><script>alert(1)</script></svg>",
    "svg-animate": "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "svg-image": f'<svg><image href="{CANARY}/svg.png"/></svg>',
    "svg-a-xlink": '<svg><a xlink:href="javascript:alert(1)"><text y=20>x</text></a></svg>',
    "math-mathml": '<math><mtext><a href="javascript:alert(1)">x</a></mtext></math>',
    "math-mglyph": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "iframe-srcdoc": '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "iframe-src": f'<iframe src="{CANARY}/frame"></iframe>',
    "object": f'<object data="{CANARY}/obj"></object>',
    "embed": f'<embed src="{CANARY}/embed">',
    "form": '<form action="javascript:alert(1)"><button>go</button></form>',
    "input-autofocus": "<input autofocus onfocus=alert(1)>",
    "meta-refresh": f'<meta http-equiv="refresh" content="0;url={CANARY}/meta">',
    "base": f'<base href="{CANARY}/">',
    "link-stylesheet": f'<link rel="stylesheet" href="{CANARY}/style.css">',
    "style-import": f"<style>@import url({CANARY}/import.css);</style>",
    "style-attr": f'<p style="background:url({CANARY}/bg.png)">x</p>',
    "details-ontoggle": "<details open ontoggle=alert(1)>",
    "body-onload": "<body onload=alert(1)>",
    "video-poster": f'<video poster="{CANARY}/poster.png"></video>',
    "audio-onerror": "<audio src=x onerror=alert(1)>",
    "a-javascript": '<a href="javascript:alert(1)">click</a>',
    "div-onmouseover": '<div onmouseover="alert(1)">hover me</div>',
    "marquee": "<marquee onstart=alert(1)>x</marquee>",
    "textarea-break": "<textarea><img src=x onerror=alert(1)></textarea>",
    "title-break": "<title><img src=x onerror=alert(1)></title>",
    "noscript-break": '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "id-clobber": '<form id="x"><input name="attributes"></form><a id="jp-MainLogo">x</a>',
    "html-comment": "<!-- <img src=x onerror=alert(1)> -->",
    "comment-break": "<!--><img src=x onerror=alert(1)>-->",
    "cdata": "<![CDATA[<img src=x onerror=alert(1)>]]>",
    "doctype": "<!DOCTYPE html><img src=x onerror=alert(1)>",
    "processing-instruction": "<?xml-stylesheet href='javascript:alert(1)'?>",
}

_CONTEXTS = {
    "list": "- {}",
    "ordered-list": "1. {}",
    "blockquote": "> {}",
    "table": "| a | b |\n|---|---|\n| {} | x |",
    "heading": "# {}",
    "link-text": "[{}](https://example.com)",
    "emphasis": "*{}*",
    "indented-html-block": "   {}",
}

_SCHEMES = {
    "link-javascript": "[x](javascript:alert(1))",
    "link-javascript-case": "[x]( JaVaScRiPt:alert(1))",
    "link-entity-decimal": "[x](&#106;avascript:alert(1))",
    "link-entity-hex": "[x](&#x6A;avascript&#x3A;alert(1))",
    "link-entity-colon": "[x](javascript&colon;alert(1))",
    "link-angle": "[x](<javascript:alert(1)>)",
    "link-tab": "[x](java\tscript:alert(1))",
    "link-newline-entity": "[x](java&#10;script:alert(1))",
    "link-percent": "[x](%6Aavascript:alert(1))",
    "link-leading-space-entity": "[x](&#32;javascript:alert(1))",
    "link-backslash-entity": "[x](\\&#106;avascript:alert(1))",
    "link-vbscript": "[x](vbscript:msgbox(1))",
    "link-data-html": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "link-data-image": "[x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "link-file": "[x](file:///etc/passwd)",
    "link-title-quotes": '[x](https://example.com "a\\" onmouseover=\\"alert(1)")',
    "autolink-javascript": "<javascript:alert(1)>",
    "autolink-upper": "<JAVASCRIPT:alert(1)>",
    "autolink-vbscript": "<vbscript:msgbox(1)>",
    "autolink-data": "<data:text/html,<script>alert(1)</script>>",
    "autolink-email-quote": '<a"onmouseover="alert(1)@x.co>',
    "bare-javascript": "see javascript:alert(1) and javascript://%0aalert(1)",
    "bare-url-quote": 'http://x.co/"onmouseover="alert(1)',
    "reference-link": "[x][r]\n\n[r]: javascript:alert(1)",
    "reference-angle-title": "[x]\n\n[x]: <javascript:alert(1)> 'title'",
    "reference-image": f'![a][r]\n\n[r]: {CANARY}/ref.png "t"',
    "image-remote": f"![chart]({CANARY}/leak.png?q=secret)",
    "image-title-quotes": f'![a]({CANARY}/t.png "x\\" onerror=\\"alert(1)")',
    "image-title-single": f"![a]({CANARY}/t.png 'x\\' onerror=alert(1) ')",
    "image-javascript": "![i](javascript:alert(1))",
    "image-data-svg": "![i](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "image-in-link": f"[![x]({CANARY}/nested.png)](https://example.com)",
    "lookalike-fullwidth": "[x](ｊａｖａｓｃｒｉｐｔ:alert(1))",
    "lookalike-cyrillic": "[x](jаvascript:alert(1))",
    "lookalike-fullwidth-tag": "＜img src=x onerror=alert(1)＞",
    "zero-width-scheme": "[x](java\u200bscript:alert(1))",
}

_SPECIAL = [
    # issue 9, class 1: a bare CR before a fence whose info string carries attributes
    Payload("cr-fence-info-attr", 'a\r```x" onmouseover="alert(1)" y="\ncode\n```'),
    Payload("cr-fence-info-attr-tilde", 'a\r~~~x" onmouseover=alert(1) "\ncode\n~~~'),
    Payload("fence-info-quote", '```py" onmouseover="alert(1)\ncode\n```'),
    Payload("fence-info-tag", "```<img src=x onerror=alert(1)>\ncode\n```"),
    # issue 9, class 2: emphasis and code-span precedence
    Payload("emphasis-code-precedence", "_`_<img src=x onerror=alert(1)>`"),
    Payload("emphasis-code-precedence-star", "*`*<img src=x onerror=alert(1)>`"),
    Payload("tilde-code", "~`<img src=x onerror=alert(1)>`"),
    Payload("www-code", "www.x.co`a `<img src=x onerror=alert(1)>`"),
    Payload("url-backslash", "http://x.co\\<img src=x onerror=alert(1)>"),
    # issue 9, class 3: math extraction swallowing backticks
    Payload("begin-end-backtick", "`\\begin{a}` <img src=x onerror=alert(1)> `\\end{a}`"),
    Payload("begin-end-multiline", "\\begin{x}\n`\n\\end{x}\n<img src=x onerror=alert(1)>\n`"),
    Payload("dollar-backtick", "$ ` $ x\n<img src=x onerror=alert(1)> `"),
    Payload("dollar-fence", "$\n ```$\n<img src=x onerror=alert(1)>\n ```"),
    Payload("math-link-attr", '[a]($" onerror=alert(1) x="$)'),
    Payload("math-image-attr", '![a]($" onerror=alert(1) x="$)'),
    # server text: an error message, a stream line, a model id
    Payload("server-error-dollar", 'http://x/$"onmouseover=alert(1) x=$'),
    Payload("server-error-json", '{"message": "bad http://x/$\\"onmouseover=alert(1) x=$"}'),
    Payload("model-id-javascript", "javascript:alert(1)"),
    Payload("model-id-javascript-slashes", "javascript://x.co/%0aalert(1)"),
    Payload("error-url-parens", "MISTRAL_SERVER_URL=http://127.0.0.1:8765)."),
    # TeX macros that MathJax could turn into links, styles or classes
    Payload("tex-href", "$\\href{javascript:alert(1)}{click}$"),
    Payload("tex-href-display", "$$\n\\href{javascript:alert(1)}{click}\n$$"),
    Payload("tex-url", "$\\url{javascript:alert(1)}$"),
    Payload("tex-class", "$\\class{jp-OutputArea}{x}$"),
    Payload("tex-style", f"$\\style{{background:url({CANARY}/tex.png)}}{{x}}$"),
    Payload("tex-cssid", "$\\cssId{jp-main-dock-panel}{x}$"),
    Payload("tex-unicode", "$\\unicode[Arial]{x41}$"),
    Payload("tex-htmldata", "$\\htmlData{onclick=alert(1)}{x}$"),
    Payload("tex-include", f"$\\includegraphics{{{CANARY}/tex.png}}$"),
    Payload("tex-require", "$\\require{action}\\toggle{a}{b}\\endtoggle$"),
    Payload("tex-environment", "\\begin{equation}\\href{javascript:alert(1)}{x}\\end{equation}"),
    # unclosed constructs and odd line endings
    Payload("unclosed-fence", "```python\nprint(1)\n<img src=x onerror=alert(1)>"),
    Payload("unclosed-code-span", "`code <img src=x onerror=alert(1)>"),
    Payload("unclosed-link", "[x](javascript:alert(1)"),
    Payload("crlf", "line one\r\n<img src=x onerror=alert(1)>\r\n```\r\ncode\r\n```"),
    Payload("cr-only", "a\r<script>alert(1)</script>\rb"),
    Payload("nul", "a\x00<img src=x\x00 onerror=alert(1)>\x00"),
    Payload("nul-scheme", "[x](java\x00script:alert(1))"),
    Payload("lone-surrogate", "before \ud800 after <img src=x onerror=alert(1)> \udfff"),
    Payload("pre-fence-mix", "<pre>\n```\n</pre>\n```\n<img src=x onerror=alert(1)>\n```"),
    Payload("comment-indent", "<!-- x -->\n    <img src=x onerror=alert(1)>"),
    Payload("div-blank-img", "<div>\n\n<img src=x onerror=alert(1)>\n\n</div>"),
    Payload("double-angle", "<<img src=x onerror=alert(1)>>"),
    Payload("escaped-tag", "\\<img src=x onerror=alert(1)>"),
    Payload("double-escaped-tag", "\\\\<img src=x onerror=alert(1)>"),
    Payload("tool-name-markup", "get_<img src=x onerror=alert(1)>`weather`"),
    Payload("tool-args-closing-fence", '{"a": "```\\n<img src=x onerror=alert(1)>"}'),
    Payload("deep-list", "- " * 300 + "deep <img src=x onerror=alert(1)>"),
    Payload("deep-quote", ">" * 300 + " deep <img src=x onerror=alert(1)>"),
    # split across deltas
    Payload("split-img-tag", IMG, _split(IMG, 1, 4, 12)),
    Payload("split-img-by-char", IMG, _by_char(IMG)),
    Payload("split-script", "<script>alert(1)</script>", _split("<script>alert(1)</script>", 3, 9)),
    Payload("split-link-scheme", "[x](javascript:alert(1))", _split("[x](javascript:alert(1))", 8)),
    Payload(
        "split-fence-info",
        'a\r```x" onmouseover="alert(1)\ncode\n```',
        _split('a\r```x" onmouseover="alert(1)\ncode\n```', 1, 2, 4, 9),
    ),
    Payload(
        "split-crlf",
        "x\r\n\r\n<img src=x onerror=alert(1)>",
        _split("x\r\n\r\n<img src=x onerror=alert(1)>", 2, 3, 4),
    ),
    Payload(
        "split-image",
        f"![a]({CANARY}/split.png)",
        _split(f"![a]({CANARY}/split.png)", 2, 5),
    ),
    Payload(
        "split-surrogate",
        "a \ud83d\ude00 b \ud800 c",
        ("a \ud83d", "\ude00 b \ud800", " c"),
    ),
    Payload(
        "split-closed-block-then-tag",
        "para one\n\npara two <img src=x onerror=alert(1)>\n\n",
        ("para one\n", "\npara two <im", "g src=x onerror=alert(1)>\n\n"),
    ),
    Payload(
        "split-tex",
        "$\\href{javascript:alert(1)}{x}$",
        ("$\\hr", "ef{javascript:", "alert(1)}{x}$"),
    ),
]


def _build() -> list[Payload]:
    payloads: list[Payload] = []
    for name, text in _TAG_SPELLINGS.items():
        payloads.append(Payload(f"tag-{name}", text))
    for context, template in _CONTEXTS.items():
        for name in ("img", "script", "svg-onload", "a-javascript"):
            payloads.append(Payload(f"{context}-{name}", template.format(_TAG_SPELLINGS[name])))
    for name, text in _SCHEMES.items():
        payloads.append(Payload(name, text))
    payloads.extend(_SPECIAL)
    return payloads


PAYLOADS: list[Payload] = _build()

assert len({payload.name for payload in PAYLOADS}) == len(PAYLOADS), "duplicate payload names"
assert all(
    payload.chunks is None or "".join(payload.chunks) == payload.text for payload in PAYLOADS
)
