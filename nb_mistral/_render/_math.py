"""Math: typeset by the front end's MathJax only when every TeX command in it is on a short list.

JupyterLab typesets ``$…$`` in HTML outputs with MathJax and all its TeX packages, some of
which make links, styles, classes or ids (``\\href``, ``\\url``, ``\\style``, ``\\class``,
``\\cssId``, ``\\unicode``, ``\\htmlData``, ``\\require``…). A reply's container tells MathJax to
skip it (``mathjax_ignore``); math made only of the commands below is put back in a span that
MathJax processes (``mathjax_process``), everything else is shown as code.
"""

from __future__ import annotations

import html
import re

PROCESS_CLASSES = "mathjax_process tex2jax_process"  # MathJax 3 (JupyterLab 4), MathJax 2
MAX_LENGTH = 2_000
MAX_BRACES = 32

_SYMBOLS = set(",;:! \\{}|_&%#$'")  # control symbols: spacing and escaped characters
_COMMAND_LINES = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu",
    "xi pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta",
    "Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega",
    "frac dfrac tfrac cfrac sqrt sum prod coprod int iint iiint oint lim limsup liminf sup inf",
    "max min arg det exp log ln lg sin cos tan cot sec csc sinh cosh tanh arcsin arccos arctan",
    "gcd deg dim ker hom Pr mod bmod pmod",
    "infty partial nabla cdot cdots ldots dots vdots ddots times div pm mp ast star circ bullet",
    "leq le geq ge neq ne approx equiv sim simeq cong propto ll gg prec succ preceq succeq",
    "in notin ni subset subseteq supset supseteq cup cap setminus emptyset varnothing forall",
    "exists nexists neg lnot land lor wedge vee oplus otimes odot bigcup bigcap bigoplus",
    "bigotimes to rightarrow leftarrow leftrightarrow Rightarrow Leftarrow Leftrightarrow iff",
    "implies impliedby mapsto longrightarrow longleftarrow longmapsto uparrow downarrow",
    "left right big Big bigg Bigg bigl bigr Bigl Bigr middle langle rangle lfloor rfloor lceil",
    "rceil lvert rvert lVert rVert vert Vert mid parallel perp angle top bot",
    "mathbb mathbf mathrm mathcal mathit mathsf mathtt mathfrak boldsymbol bm text textrm",
    "textbf textit operatorname displaystyle textstyle scriptstyle",
    "hat widehat bar overline underline tilde widetilde vec dot ddot acute grave breve check",
    "overbrace underbrace overset underset stackrel overrightarrow overleftarrow binom choose",
    "quad qquad prime dagger ell hbar Re Im aleph imath jmath not colon",
    "begin end hline cline substack xrightarrow xleftarrow limits nolimits",
)
_COMMANDS = frozenset(word for line in _COMMAND_LINES for word in line.split())
_ENVIRONMENT_LINES = (
    "matrix pmatrix bmatrix Bmatrix vmatrix Vmatrix smallmatrix cases aligned align align*",
    "gathered gather gather* split array equation equation* alignat alignat* alignedat",
)
_ENVIRONMENTS = frozenset(word for line in _ENVIRONMENT_LINES for word in line.split())
_COMMAND = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*(\{[^{}]*\})?")


def typesettable(tex: str) -> bool:
    """Whether MathJax may see ``tex``: short, not too deeply braced, and every control word,
    control symbol and environment on the lists above."""
    if len(tex) > MAX_LENGTH:
        return False
    depth = 0
    for character in tex:
        depth += (character == "{") - (character == "}")
        if depth > MAX_BRACES:
            return False
    for match in _COMMAND.finditer(tex):
        name = match.group(1)
        if name not in _COMMANDS and name not in _SYMBOLS:
            return False
    for match in _ENVIRONMENT.finditer(tex):
        argument = match.group(1)
        if argument is None or argument[1:-1].strip() not in _ENVIRONMENTS:
            return False
    return True


def math_html(tex: str, *, display: bool, typeset: bool) -> str:
    """HTML for one piece of math: a span MathJax processes, or code it never looks into."""
    if typeset and typesettable(tex):
        delimiter = "$$" if display else "$"
        span = f'<span class="{PROCESS_CLASSES}">{html.escape(delimiter + tex + delimiter)}</span>'
        return f"<p>{span}</p>\n" if display else span
    if display:
        source = html.escape(tex.strip("\n"), quote=False)
        return f'<pre><code class="language-math">$$\n{source}\n$$</code></pre>\n'
    return f'<code class="language-math">${html.escape(tex, quote=False)}$</code>'


_MATH_SPAN = re.compile(f'<span class="{PROCESS_CLASSES}">([^<]*)</span>')
_PROCESS_CLASS = re.compile(r'class="[^"]*_process[^"]*"')


def _verified(match: re.Match[str]) -> str:
    source = html.unescape(match.group(1))
    for delimiter in ("$$", "$"):
        inner = source[len(delimiter) : -len(delimiter)]
        wrapped = source.startswith(delimiter) and source.endswith(delimiter)
        if wrapped and len(source) >= 2 * len(delimiter) and "$" not in inner:
            return match.group(0) if typesettable(inner) else f"<code>{match.group(1)}</code>"
    return f"<code>{match.group(1)}</code>"


def check_math(sanitised: str) -> str:
    """The sanitiser's own check of math spans: each must hold one allowed formula, and no
    other element may ask MathJax to process it."""
    if "_process" not in sanitised:
        return sanitised
    checked = _MATH_SPAN.sub(_verified, sanitised)
    if len(_PROCESS_CLASS.findall(checked)) == len(_MATH_SPAN.findall(checked)):
        return checked
    return _PROCESS_CLASS.sub("", checked)
