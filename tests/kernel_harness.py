"""A real ipykernel driven the way a front end drives it, for tests and the benchmark.

``KernelHarness`` starts a kernel with ``jupyter_client`` and reads its IOPub socket in a
thread of its own, as a front end does: every message is kept (raw frames, decoded message,
receive time on both the monotonic and the wall clock), whichever cell it belongs to and
whenever it arrives, so messages sent by background streams after a cell went idle are there
too. ``execute`` runs a cell and returns once the kernel is idle again and the reply is in.

Helpers read those messages like a front end: updates of one ``display_id``, every payload of
a channel that renders markup, and the outputs a saved notebook would keep.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.session import Session

MARKUP_MIMES = ("text/markdown", "text/html", "image/svg+xml")
DISPLAY_TYPES = ("display_data", "update_display_data", "execute_result")


class Msg:
    """One IOPub message as received: its raw frames and when they arrived.

    The reader thread only takes the frames off the socket (so that it keeps up with the
    kernel and nothing is dropped); the message is decoded, once, when first looked at.
    """

    __slots__ = ("_msg", "_session", "raw", "t", "wall")
    _lock = threading.Lock()

    def __init__(self, raw: list[bytes], t: float, wall: float, session: Session) -> None:
        self.raw = raw
        self.t = t  # time.monotonic() at receipt
        self.wall = wall  # time.time() at receipt
        self._session = session
        self._msg: dict[str, Any] | None = None

    @property
    def msg(self) -> dict[str, Any]:
        if self._msg is None:
            with Msg._lock:
                if self._msg is None:
                    self._msg = self._session.deserialize(self.raw)
        return self._msg

    @property
    def msg_type(self) -> str:
        return str(self.msg["header"]["msg_type"])

    @property
    def content(self) -> dict[str, Any]:
        return self.msg["content"]  # type: ignore[no-any-return]

    @property
    def parent_id(self) -> str | None:
        return self.msg.get("parent_header", {}).get("msg_id")

    @property
    def nbytes(self) -> int:
        """Bytes on the wire for this message (every frame after the identities)."""
        return sum(len(frame) for frame in self.raw)

    @property
    def raw_text(self) -> str:
        """All frames of the message, decoded as text (for scanning for secrets)."""
        return "\n".join(frame.decode("utf-8", "replace") for frame in self.raw)

    @property
    def display_id(self) -> str | None:
        transient = self.content.get("transient") or {}
        value = transient.get("display_id")
        return str(value) if value is not None else None

    def __repr__(self) -> str:
        return f"<Msg {self.msg_type} t={self.t:.3f} {str(self.content)[:120]}>"


@dataclass
class Execution:
    """One executed cell: its shell reply and the IOPub messages up to its idle status."""

    msg_id: str
    code: str
    sent_at: float
    log_start: int = 0  # position in the harness's log when the request was sent
    reply: dict[str, Any] = field(default_factory=dict)
    messages: list[Msg] = field(default_factory=list)
    idle_at: float = 0.0
    replied_at: float = 0.0

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def duration(self) -> float:
        """From sending the request to the later of idle and the reply, as a front end sees."""
        return max(self.idle_at, self.replied_at) - self.sent_at

    @property
    def error(self) -> dict[str, Any] | None:
        for m in self.messages:
            if m.msg_type == "error":
                return m.content
        return None

    @property
    def stdout(self) -> str:
        return "".join(
            m.content["text"]
            for m in self.messages
            if m.msg_type == "stream" and m.content["name"] == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            m.content["text"]
            for m in self.messages
            if m.msg_type == "stream" and m.content["name"] == "stderr"
        )

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return list(self.reply["content"].get("payload") or [])

    def check(self) -> Execution:
        """Raise with the kernel's traceback unless the cell succeeded."""
        if self.status != "ok":
            content = self.reply["content"]
            trace = "\n".join(content.get("traceback") or [])
            raise AssertionError(
                f"cell failed: {content.get('ename')}: {content.get('evalue')}\n"
                f"{_strip_ansi(trace)}\n--- code ---\n{self.code}"
            )
        return self


# What a ``1+1`` round trip takes on an idle machine: time limits in kernel tests are stated
# for such a machine and scaled by the round trip measured in the same test (``limit``), so a
# loaded 2-core CI machine does not fail them.
IDLE_ROUND_TRIP = 0.01


def limit(seconds: float, round_trip: float) -> float:
    """``seconds`` on an idle machine, scaled up when this one is slower right now."""
    return seconds * max(1.0, round_trip / IDLE_ROUND_TRIP)


class KernelHarness:
    """A started ipykernel plus a thread that reads all of its IOPub messages."""

    def __init__(self, env: Mapping[str, str] | None = None, *, startup_timeout: float = 60):
        self.env = dict(env if env is not None else os.environ)
        self.startup_timeout = startup_timeout
        self.km: KernelManager | None = None
        self.kc: BlockingKernelClient | None = None
        self.log: list[Msg] = []
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self._replies: dict[str, dict[str, Any]] = {}
        self._reply_times: dict[str, float] = {}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> KernelHarness:
        if self.km is not None:
            return self
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env=self.env, extra_arguments=["--HistoryManager.enabled=False"])
        kc = km.client()
        self.km, self.kc = km, kc
        # our own SUB socket, unbounded, read by our own thread (a front end keeps everything)
        socket = kc.context.socket(zmq.SUB)
        socket.rcvhwm = 0
        socket.linger = 0
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(kc._make_url("iopub"))
        self._reader = threading.Thread(
            target=self._read_iopub,
            args=(socket, kc.session.clone()),  # a digest history of its own
            name="iopub-reader",
            daemon=True,
        )
        self._reader.start()
        kc.start_channels(iopub=False)
        try:
            kc.wait_for_ready(timeout=self.startup_timeout)
            self._until_subscribed()
        except (RuntimeError, TimeoutError):
            self.stop()
            raise
        self.wait_quiet()
        return self

    def _until_subscribed(self) -> None:
        """Ask for kernel info until our socket sees the kernel's answer status (a SUB socket
        misses what is published before its subscription is in place)."""
        assert self.kc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            msg_id = self.kc.kernel_info()
            try:
                self.wait_for(
                    lambda msgs, msg_id=msg_id: any(m.parent_id == msg_id for m in msgs), 1.0
                )
                return
            except TimeoutError:
                continue
        raise TimeoutError("no IOPub message from the kernel")

    def stop(self) -> None:
        self._stopping.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        if self.km is not None:
            self.km.shutdown_kernel(now=True)
            self.km = None

    def __enter__(self) -> KernelHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading IOPub --------------------------------------------------------------------

    def _read_iopub(self, socket: zmq.Socket[Any], session: Session) -> None:
        try:
            while not self._stopping.is_set():
                if not socket.poll(50):
                    continue
                frames = socket.recv_multipart(copy=True)
                t, wall = time.monotonic(), time.time()
                _idents, parts = session.feed_identities(frames)
                with self._changed:
                    self.log.append(Msg(list(parts), t, wall, session))
                    self._changed.notify_all()
        except zmq.ZMQError:
            return
        finally:
            socket.close(linger=0)

    def mark(self) -> int:
        """A position in the log, for ``since``."""
        with self._changed:
            return len(self.log)

    def clear_log(self) -> None:
        """Forget the messages received so far (long benchmarks); positions restart at 0."""
        with self._changed:
            self.log.clear()

    def messages(self, parent_id: str | None = None, since: int = 0) -> list[Msg]:
        with self._changed:
            found = self.log[since:]
        return [m for m in found if parent_id is None or m.parent_id == parent_id]

    def wait_for(
        self, predicate: Callable[[list[Msg]], bool], timeout: float = 30, since: int = 0
    ) -> list[Msg]:
        """Wait until ``predicate(messages since `since`)`` holds; raise on timeout.

        The predicate runs outside the lock, so that the reader thread is never held up
        (its receive times stay true)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                found = self.log[since:]
            if predicate(found):
                return found
            with self._changed:
                if len(self.log) - since == len(found):  # nothing new since we looked
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"condition not met in {timeout} s; {len(found)} msgs")
                    self._changed.wait(min(left, 0.5))

    def _wait_idle(self, msg_id: str, start: int, timeout: float) -> Msg:
        """The idle status of request ``msg_id``, looking at each message once from ``start``."""
        deadline = time.monotonic() + timeout
        pos = start
        while True:
            with self._changed:
                new = self.log[pos:]
            for m in new:
                pos += 1
                if (
                    m.parent_id == msg_id
                    and m.msg_type == "status"
                    and m.content["execution_state"] == "idle"
                ):
                    return m
            with self._changed:
                if len(self.log) == pos:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"no idle status for {msg_id} in {timeout} s")
                    self._changed.wait(min(left, 0.5))

    def wait_quiet(self, quiet: float = 0.3, timeout: float = 10) -> None:
        """Wait until no IOPub message arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._changed:
                last = self.log[-1].t if self.log else 0.0
            if time.monotonic() - last >= quiet:
                return
            time.sleep(quiet / 3)

    # -- running cells --------------------------------------------------------------------

    def submit(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> Execution:
        """Send a cell and return at once; ``wait`` collects it."""
        assert self.kc is not None
        start = self.mark()
        sent = time.monotonic()
        msg_id = self.kc.execute(
            code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions or {},
            allow_stdin=False,
            stop_on_error=False,
        )
        return Execution(msg_id=msg_id, code=code, sent_at=sent, log_start=start)

    def wait(self, execution: Execution, timeout: float = 60) -> Execution:
        """Wait for the cell's idle status and its execute_reply."""
        assert self.kc is not None
        msg_id = execution.msg_id
        deadline = time.monotonic() + timeout
        while msg_id not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no execute_reply in {timeout} s for:\n{execution.code}")
            try:
                reply = self.kc.get_shell_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            parent = reply.get("parent_header", {}).get("msg_id")
            self._replies[parent] = reply
            self._reply_times[parent] = time.monotonic()
        execution.reply = self._replies.pop(msg_id)
        execution.replied_at = self._reply_times.pop(msg_id)
        try:
            idle = self._wait_idle(msg_id, execution.log_start, max(deadline - time.monotonic(), 5))
        except TimeoutError:
            raise TimeoutError(
                f"execute_reply came, but no idle status on IOPub:\n{execution.code}"
            ) from None
        execution.idle_at = idle.t
        with self._changed:
            upto = self.log.index(idle, execution.log_start) + 1
            msgs = self.log[execution.log_start : upto]
        execution.messages = [m for m in msgs if m.parent_id == msg_id]
        return execution

    def execute(self, code: str, *, timeout: float = 60, **kwargs: Any) -> Execution:
        """Run a cell; return its reply and IOPub messages (up to idle)."""
        return self.wait(self.submit(code, **kwargs), timeout=timeout)

    def round_trip(self) -> float:
        """The best of three ``1+1`` round trips: this machine's speed now, for ``limit``."""
        return min(self.run("1+1").duration for _ in range(3))

    def run(self, code: str, *, timeout: float = 60, **kwargs: Any) -> Execution:
        """``execute`` that raises unless the cell succeeded."""
        return self.execute(code, timeout=timeout, **kwargs).check()

    def evaluate(self, expression: str, *, timeout: float = 30) -> Any:
        """The JSON value of ``expression`` in the kernel (via a silent user_expression)."""
        ex = self.execute(
            "",
            silent=True,
            store_history=False,
            user_expressions={"v": f"__import__('json').dumps({expression})"},
            timeout=timeout,
        )
        result = ex.reply["content"]["user_expressions"]["v"]
        if result.get("status") != "ok":
            raise AssertionError(f"{expression}: {result.get('ename')}: {result.get('evalue')}")
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    def interrupt(self) -> None:
        """Interrupt the kernel as a front end's stop button does (SIGINT)."""
        assert self.km is not None
        self.km.interrupt_kernel()

    def outputs_since(self, parent_id: str, since: int = 0) -> list[Msg]:
        """Everything the cell ``parent_id`` published so far, after idle included."""
        return self.messages(parent_id, since)


# -- reading messages like a front end ------------------------------------------------------


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def strip_ansi(text: str) -> str:
    return _strip_ansi(text)


def display_ids(msgs: Iterable[Msg], mime: str | None = None) -> list[str]:
    """Display ids created by ``display_data`` (optionally only those carrying ``mime``)."""
    found: list[str] = []
    for m in msgs:
        if (
            m.msg_type == "display_data"
            and m.display_id
            and m.display_id not in found
            and (mime is None or mime in m.content.get("data", {}))
        ):
            found.append(m.display_id)
    return found


def reply_display_id(msgs: Iterable[Msg]) -> str:
    """The display id of the reply: the first display carrying HTML, Markdown or plain text
    only."""
    for m in msgs:
        if m.msg_type == "display_data" and m.display_id:
            data = m.content.get("data", {})
            if "text/html" in data or "text/markdown" in data or set(data) == {"text/plain"}:
                return m.display_id
    raise AssertionError("no reply display in these messages")


def display_messages(msgs: Iterable[Msg], display_id: str) -> list[Msg]:
    """Front-end updates of one display: its display_data and every update_display_data."""
    return [
        m
        for m in msgs
        if m.msg_type in ("display_data", "update_display_data") and m.display_id == display_id
    ]


def count_updates(msgs: Iterable[Msg], display_id: str) -> int:
    return len(display_messages(msgs, display_id))


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any sliding window of ``window`` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def markup_payloads(msgs: Iterable[Msg]) -> list[tuple[str, str]]:
    """Every (channel, payload) that a front end renders as markup: Markdown, HTML and SVG
    outputs, and the string values of widget state."""
    found: list[tuple[str, str]] = []
    for m in msgs:
        if m.msg_type in DISPLAY_TYPES:
            data = m.content.get("data", {})
            found.extend((mime, data[mime]) for mime in MARKUP_MIMES if mime in data)
        elif m.msg_type in ("comm_open", "comm_msg"):
            state = (m.content.get("data") or {}).get("state") or {}
            found.extend(("widget", s) for s in _strings(state))
    return found


def notebook_outputs(msgs: Iterable[Msg]) -> list[dict[str, Any]]:
    """The outputs a front end keeps in the saved notebook for these messages."""
    import nbformat.v4 as v4

    outputs: list[dict[str, Any]] = []
    ids: list[str | None] = []
    clear_pending = False
    for m in msgs:
        kind = m.msg_type
        if kind == "clear_output":
            if m.content.get("wait"):
                clear_pending = True
            else:
                outputs.clear()
                ids.clear()
            continue
        if kind == "update_display_data":
            for i, did in enumerate(ids):
                if did == m.display_id:
                    outputs[i]["data"] = m.content["data"]
                    outputs[i]["metadata"] = m.content.get("metadata", {})
            continue
        if kind not in ("stream", "display_data", "execute_result", "error"):
            continue
        if clear_pending:
            outputs.clear()
            ids.clear()
            clear_pending = False
        out = v4.output_from_msg(m.msg)
        if kind == "stream" and outputs and outputs[-1].get("name") == out["name"]:
            outputs[-1]["text"] += out["text"]
            continue
        outputs.append(out)
        ids.append(m.display_id)
    return outputs


# -- a kernel for nb_mistral ----------------------------------------------------------------


def kernel_env(server_url: str | None, **extra: str) -> dict[str, str]:
    """The test process's environment for a kernel: no key, the given server, extra vars, and
    the test run's reply store (``NB_MISTRAL_STORE``; a temp one if none is set), never the
    real home's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISTRAL_")}
    if not env.get("NB_MISTRAL_STORE"):
        env["NB_MISTRAL_STORE"] = os.path.join(tempfile.mkdtemp(), "replies.sqlite3")
    if server_url is not None:
        env["MISTRAL_SERVER_URL"] = server_url
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    # the kernel must import this checkout of nb_mistral
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def start_nb_kernel(server_url: str | None, **extra: str) -> KernelHarness:
    """A started kernel with ``%load_ext nb_mistral`` done."""
    harness = KernelHarness(kernel_env(server_url, **extra)).start()
    try:
        harness.run("%load_ext nb_mistral", timeout=60)
    except BaseException:
        harness.stop()
        raise
    return harness


if __name__ == "__main__":  # a quick manual check: python tests/kernel_harness.py URL
    with start_nb_kernel(sys.argv[1] if len(sys.argv) > 1 else None) as k:
        print(k.run("1+1").messages)


# -- is markup inert? ------------------------------------------------------------------------

_DANGEROUS_TAG = re.compile(r"<\s*(img|script|svg|iframe|object|embed|style)\b", re.I)
_DANGEROUS_URL = re.compile(
    r"""\b(href|src|action|formaction|xlink:href)\s*=\s*["']?\s*(javascript|vbscript|data):""",
    re.I,
)


def render_markdown_like_a_front_end(markdown: str) -> str:
    """Markdown to HTML the way a trusted notebook output renders it: raw HTML passes
    through, and no link is refused (markdown-it would drop ``javascript:`` links itself,
    JupyterLab's renderer does not)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md.render(markdown)


def markup_violations(payloads: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(channel, offending markup, payload excerpt) for every tag or script URL that would
    reach the DOM as markup from these payloads."""
    from nb_mistral._render._view import STYLE  # our own stylesheet, the one allowed

    found: list[tuple[str, str, str]] = []
    for channel, payload in payloads:
        html = render_markdown_like_a_front_end(payload) if channel == "text/markdown" else payload
        html = html.replace(STYLE, "")
        for pattern in (_DANGEROUS_TAG, _DANGEROUS_URL):
            for match in pattern.finditer(html):
                start = max(0, match.start() - 60)
                found.append((channel, match.group(0), html[start : match.end() + 60]))
    return found
