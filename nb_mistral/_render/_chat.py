"""The chat widget's markup: our own chrome around HTML that is already sanitised (the
bodies passed in come from the renderer; only the labels are ours)."""

from __future__ import annotations

import html


def message_html(label: str, body: str, footer: str = "", *, user: bool = False) -> str:
    """One turn of the transcript: our own markup around the rendered Markdown."""
    accent = "var(--jp-brand-color1, #1976d2)" if user else "var(--jp-border-color1, #bdbdbd)"
    kind = "user" if user else "assistant"
    footer_html = (
        '<div class="nb-mistral-status" style="font-size:var(--jp-ui-font-size0, 11px);'
        f'color:var(--jp-ui-font-color2, #757575)">{footer}</div>'
        if footer
        else ""
    )
    return (
        f'<div class="nb-mistral-message nb-mistral-{kind}" '
        f'style="border-left:3px solid {accent};padding:2px 0 2px 10px;margin:4px 0">'
        '<div style="font-weight:600;font-size:var(--jp-ui-font-size1, 13px);'
        f'color:var(--jp-ui-font-color2, #616161)">{html.escape(label)}</div>'
        f'<div class="jp-RenderedHTMLCommon" style="padding:0">{body}</div>'
        f"{footer_html}</div>"
    )


def thinking_panel_html(body: str) -> str:
    """The inside of the collapsible reasoning panel."""
    return (
        '<div class="jp-RenderedHTMLCommon" style="padding:0;'
        f'color:var(--jp-ui-font-color2, #616161)">{body}</div>'
    )


def notice_html(body: str) -> str:
    """A one-line notice under the transcript (a send that failed to start)."""
    return f'<div style="color:var(--jp-error-color1, #d32f2f)">⚠ {body}</div>'
