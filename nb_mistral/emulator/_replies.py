"""The emulator's reply: deterministic Markdown derived from the conversation, split into tokens.

Everything here is a pure function of the request body, so the same request always yields
byte-identical text and the same token split: tests can compare streamed deltas with the
non-streaming content, and demos look the same on every run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._images import describe, image_urls
from ._schema import example, structured_text

EMULATOR_NOTICE = "*Emulated reply from nb_mistral's offline emulator — no model was called.*"

_TOKEN = re.compile(r"\s*\S+\s*")
_WORD = re.compile(r"[^\W_]+")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_FORCING_TOOL_CHOICES = ("any", "required")


def split_tokens(text: str) -> list[str]:
    """Split text into word-like tokens (a word plus the whitespace after it).

    The concatenation of the tokens is exactly ``text`` (for any text with a non-space
    character), which is what lets deltas add up to the non-streaming content.
    """
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class CannedToolCall:
    """A made-up function call, answered instead of text when the request offers tools."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class CannedReply:
    """Everything one completion sends: thinking tokens, answer tokens or a tool call."""

    thinking: tuple[str, ...]
    content: tuple[str, ...]
    tool_call: CannedToolCall | None
    finish_reason: str
    prompt_tokens: int

    @property
    def text(self) -> str:
        """The answer as the non-streaming API returns it."""
        return "".join(self.content)

    @property
    def thinking_text(self) -> str:
        """The reasoning text (empty for non-reasoning models)."""
        return "".join(self.thinking)

    @property
    def completion_tokens(self) -> int:
        """Deltas sent, thinking included; a tool call counts its argument tokens."""
        if self.tool_call is not None:
            return max(1, len(split_tokens(self.tool_call.name + " " + self.tool_call.arguments)))
        return len(self.thinking) + len(self.content)


def message_text(message: Any) -> str:
    """The plain text of one message, whatever shape its content has."""
    if not isinstance(message, Mapping):
        return ""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return json.dumps(content, ensure_ascii=False, sort_keys=True, default=str)


def is_reasoning_model(model: str) -> bool:
    """Magistral models stream their thinking before the answer."""
    return model.startswith("magistral")


def count_prompt_tokens(messages: Sequence[Any]) -> int:
    """A simple, deterministic stand-in for a tokenizer: words plus one per message."""
    return sum(len(split_tokens(message_text(m))) + 1 for m in messages)


def build_reply(body: Mapping[str, Any]) -> CannedReply:
    """Build the whole reply for a validated chat-completion request body."""
    model = str(body.get("model", ""))
    raw_messages = body.get("messages")
    messages: list[Any] = list(raw_messages) if isinstance(raw_messages, Sequence) else []
    prompt_tokens = count_prompt_tokens(messages)
    digest = _fingerprint(messages)

    tool = _chosen_tool(body, messages)
    if tool is not None:
        return CannedReply(
            thinking=(),
            content=(),
            tool_call=_make_tool_call(tool, digest, _last_user_text(messages)),
            finish_reason="tool_calls",
            prompt_tokens=prompt_tokens,
        )

    facts = _Facts.of(messages, model, digest)
    thinking = split_tokens(_thinking_text(facts)) if is_reasoning_model(model) else []
    structured = structured_text(body.get("response_format"), facts.keywords, facts.user)
    content = split_tokens(structured if structured is not None else _answer_text(facts))

    max_tokens = body.get("max_tokens")
    finish_reason = "stop"
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        finish_reason = "length"
        thinking = thinking[:max_tokens]
        content = _fit(content, max_tokens - len(thinking), facts)
    return CannedReply(
        thinking=tuple(thinking),
        content=tuple(content),
        tool_call=None,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
    )


@dataclass(frozen=True)
class _Facts:
    """What the reply text is made of, extracted once from the conversation."""

    model: str
    user: str
    system: str
    tool_result: str | None
    tool_results: tuple[str, ...]
    images: tuple[str, ...]
    turn: int
    words: tuple[str, ...]
    keywords: tuple[str, ...]
    digest: str

    @classmethod
    def of(cls, messages: Sequence[Any], model: str, digest: str) -> _Facts:
        def role(m: Any) -> Any:
            return m.get("role") if isinstance(m, Mapping) else None

        users = [m for m in messages if role(m) == "user"]
        user = message_text(users[-1]) if users else ""
        system = " ".join(message_text(m) for m in messages if role(m) == "system").strip()
        last = messages[-1] if messages else None
        tool_result = message_text(last) if role(last) == "tool" else None
        tool_results = tuple(message_text(m) for m in _since_last_user(messages, "tool"))
        images = tuple(describe(url) for url in image_urls(users[-1])) if users else ()
        words = tuple(_WORD.findall(user))
        seen: dict[str, None] = {}
        for word in words:
            if len(word) >= 3 and word.lower() not in seen:
                seen[word.lower()] = None
        keywords = tuple(list(seen)[:5]) or ("hello", "emulator")
        return cls(
            model,
            user,
            system,
            tool_result,
            tool_results,
            images,
            len(users),
            words,
            keywords,
            digest,
        )


def _fingerprint(messages: Sequence[Any]) -> str:
    """A digest of the conversation; an image counts by its format and size, so that a figure
    re-rendered by another matplotlib version gets the same reply."""
    canonical = json.dumps(
        [_without_image_data(m) for m in messages], ensure_ascii=False, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _without_image_data(message: Any) -> Any:
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list):
        return message
    parts = []
    for part in content:
        urls = image_urls({"content": [part]})
        parts.append({"type": "image", "image": describe(urls[0])} if urls else part)
    return {**message, "content": parts}


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _quote(text: str) -> str:
    """Quote the user's text verbatim, line by line, as a Markdown blockquote."""
    return "\n".join("> " + line for line in text.split("\n"))


def _thinking_text(f: _Facts) -> str:
    return (
        f"*Emulated reasoning — no model is thinking.* Turn {f.turn}: quote the prompt, "
        "then add a heading, list, code and table.\n"
    )


def _answer_text(f: _Facts) -> str:
    title = " ".join(f.words[:8]) if f.words else "Your message"
    title = title[:1].upper() + title[1:]
    longest = max(f.words, key=len) if f.words else "—"
    kw_code = ", ".join(f"`{k}`" for k in f.keywords)
    kw_args = " ".join(f.keywords)
    parts = [EMULATOR_NOTICE, _quote(f.user)]
    if f.system:
        parts.append(f"System prompt noted: “{_one_line(f.system)}”")
    if f.images:
        listed = ", ".join(f.images)
        parts.append(f"Images received: {len(f.images)} — {listed}.")
    if len(f.tool_results) > 1:
        parts += [f"Tool result noted: “{_one_line(r)}”" for r in f.tool_results]
    elif f.tool_result is not None:
        parts.append(f"Tool result noted: “{_one_line(f.tool_result)}”")
    parts += [
        f"## {title}",
        f"This is turn **{f.turn}** of the conversation, answered by the emulated "
        f"`{f.model}`. Your message has {_plural(len(f.words), 'word')} and "
        f"{_plural(len(f.user), 'character')}; "
        "the emulator turns it into a fixed, repeatable answer so that notebooks and tests "
        "run offline, without a key.",
        "\n".join(
            [
                f"- **Keywords:** {kw_code}",
                f"- *Longest word:* `{longest}`",
                f"- **Fingerprint:** `{f.digest[:12]}` — the same conversation always gets "
                "the same reply.",
                "- *Streaming:* one word per delta, paced by `--tokens-per-second`.",
            ]
        ),
        "\n".join(
            [
                "```python",
                "def keywords(prompt: str) -> list[str]:",
                '    """Emulated helper: keep the longer words of the prompt."""',
                "    return [word for word in prompt.split() if len(word) >= 3]",
                "",
                "",
                f'print(keywords("{kw_args}"))',
                "```",
            ]
        ),
        "\n".join(
            ["| Keyword | Letters | Position |", "|---|---:|---:|"]
            + [f"| `{k}` | {len(k)} | {i} |" for i, k in enumerate(f.keywords, 1)]
        ),
        "That is all the emulator has to say: point `MISTRAL_SERVER_URL` at the real "
        "API for a real answer.",
    ]
    return "\n\n".join(parts)


def _extension(k: int, f: _Facts) -> str:
    """Paragraph ``k`` of the deterministic filler used to reach ``max_tokens`` exactly."""
    kws = f.keywords
    a, b, c = kws[k % len(kws)], kws[(k + 1) % len(kws)], kws[(k + 2) % len(kws)]
    return (
        f"### {k}. More emulated text\n\n"
        f"Paragraph {k} keeps the emulated answer going so that exactly `max_tokens` "
        f"tokens are streamed. It repeats **{a}**, *{b}* and `{c}` in a fixed order; "
        "nothing here comes from a model.\n\n"
    )


def _fit(tokens: list[str], n: int, f: _Facts) -> list[str]:
    """Cut or extend the answer to exactly ``n`` tokens (``n`` may be zero)."""
    n = max(n, 0)
    if len(tokens) >= n:
        return tokens[:n]
    out = list(tokens)
    if out:
        out[-1] += "\n\n"  # whitespace joins the previous token, keeping the count
    k = 1
    while len(out) < n:
        out += split_tokens(_extension(k, f))
        k += 1
    return out[:n]


def _chosen_tool(body: Mapping[str, Any], messages: Sequence[Any]) -> Mapping[str, Any] | None:
    """The tool to call, or None when the model should answer in text."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, Sequence) or isinstance(tools, str) or not tools or choice == "none":
        return None
    functions = [_function_of(t) for t in tools if isinstance(t, Mapping)]
    functions = [fn for fn in functions if isinstance(fn.get("name"), str)]
    if not functions:
        return None
    if isinstance(choice, Mapping):
        wanted = _function_of(choice).get("name")
        return next((fn for fn in functions if fn["name"] == wanted), functions[0])
    named = _named_tools(functions, messages)
    if named is not None:
        return named[0] if named else None
    last = messages[-1] if messages else None
    answered = isinstance(last, Mapping) and last.get("role") == "tool"
    if answered and choice not in _FORCING_TOOL_CHOICES:
        return None  # the tool's result is in: answer in text, as a model would
    return functions[0]


def _since_last_user(messages: Sequence[Any], role: str) -> list[Any]:
    """The messages of ``role`` after the last user message."""
    out: list[Any] = []
    for message in messages:
        kind = message.get("role") if isinstance(message, Mapping) else None
        if kind == "user":
            out = []
        elif kind == role:
            out.append(message)
    return out


def _named_tools(
    functions: Sequence[Mapping[str, Any]], messages: Sequence[Any]
) -> list[Mapping[str, Any]] | None:
    """When the last user message names tools: those not yet called since, in the order the
    prompt names them (empty: all answered). None when it names none."""
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    prompt = message_text(users[-1]) if users else ""
    found = [
        (match.start(), fn)
        for fn in functions
        if (match := re.search(rf"(?<![\w]){re.escape(str(fn['name']))}(?![\w])", prompt))
    ]
    if not found:
        return None
    called = {
        call.get("function", {}).get("name")
        for message in _since_last_user(messages, "assistant")
        for call in message.get("tool_calls") or ()
        if isinstance(call, Mapping)
    }
    return [fn for _, fn in sorted(found, key=lambda pair: pair[0]) if fn["name"] not in called]


def _function_of(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    fn = tool.get("function")
    return fn if isinstance(fn, Mapping) else tool


def _last_user_text(messages: Sequence[Any]) -> str:
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    return message_text(users[-1]) if users else ""


def _make_tool_call(fn: Mapping[str, Any], digest: str, prompt: str) -> CannedToolCall:
    params = fn.get("parameters")
    schema = params if isinstance(params, Mapping) else {}
    args = example(schema, name=str(fn["name"]), prompt=prompt)
    if not isinstance(args, dict):
        args = {}
    number = int(digest, 16)
    call_id = ""
    for _ in range(9):
        number, r = divmod(number, len(_ALNUM))
        call_id += _ALNUM[r]
    return CannedToolCall(
        id=call_id, name=str(fn["name"]), arguments=json.dumps(args, ensure_ascii=False)
    )
