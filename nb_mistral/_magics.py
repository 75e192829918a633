"""``%%mistral``: a prompt in a cell, the reply streamed live and bound to a variable.

Defaults are traitlets (``%config MistralMagics.model = ...``). The API key is held as a secret
whose repr is hidden, so ``%config MistralMagics`` lists the trait without showing its value.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Float, Int, TraitType, Unicode

from ._api import DEFAULT_MODEL, build_messages
from ._client import Mistral, _Secret
from ._errors import APIError, MistralError
from ._interpolate import interpolate
from ._live import FORMATS, LiveView
from ._render import code_of, plain
from ._reply import Reply
from ._run import drive, kernel_loop, start_background

LATEST = "_mistral"


class SecretString(TraitType[_Secret | None, _Secret | str | None]):
    """A string trait whose value never prints (for the API key)."""

    default_value = None
    allow_none = True
    info_text = "a secret string (never displayed)"

    def validate(self, obj: Any, value: Any) -> _Secret | None:
        if value is None or isinstance(value, _Secret):
            return value
        if isinstance(value, str):
            return _Secret(value) if value else None
        self.error(obj, type(value).__name__)

    def default_value_repr(self) -> str:
        return "None"


class CellError(MistralError):
    """Ends a cell with one short line instead of a traceback (IPython honours
    ``_render_traceback_``)."""

    def __init__(self, error: BaseException, name: str | None) -> None:
        self.error = error
        where = f" (the reply so far is in `{name}`)" if name else ""
        if isinstance(error, APIError):
            line = f"Mistral API error {error}{where}"
        else:
            line = f"{type(error).__name__}: {error}{where}"
        super().__init__(line)

    def _render_traceback_(self) -> list[str]:
        # server text: no clickable javascript: in the front end's linkified error line
        return [f"\x1b[31m{plain(str(self))}\x1b[0m"]


class Interrupted(KeyboardInterrupt):
    """A kernel interrupt during a reply: short, and it says where the partial reply is."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mKeyboardInterrupt: {self}\x1b[0m"]


@magics_class
class MistralMagics(Magics):
    """The ``%%mistral`` cell magic and ``%mistral`` line magic."""

    model = Unicode(DEFAULT_MODEL, help="Model used when -m is not given.").tag(config=True)
    server_url = Unicode(
        None,
        allow_none=True,
        help="Server to talk to; default MISTRAL_SERVER_URL, else https://api.mistral.ai.",
    ).tag(config=True)
    api_key = SecretString(help="API key; default MISTRAL_API_KEY. Never displayed.").tag(
        config=True
    )
    system = Unicode(None, allow_none=True, help="Default system prompt.").tag(config=True)
    temperature = Float(None, allow_none=True, help="Default sampling temperature.").tag(
        config=True
    )
    max_tokens = Int(None, allow_none=True, help="Default cap on the reply's tokens.").tag(
        config=True
    )
    max_updates_per_second = Float(
        20.0, help="Front-end updates per second at most while a reply streams."
    ).tag(config=True)
    timeout_ms = Int(
        None, allow_none=True, help="Timeout of connecting and of each wait for data."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.last_reply: Reply | None = None
        self._client: Mistral | None = None
        self._client_key: tuple[Any, ...] | None = None

    def client(self) -> Mistral:
        """A client for the current settings, reused while they hold."""
        # the environment counts too: a key set with os.environ after a first try must be used
        # (the env key kept as a digest, so that no attribute holds it in clear)
        env_key = hashlib.sha256(os.environ.get("MISTRAL_API_KEY", "").encode()).hexdigest()
        env = (os.environ.get("MISTRAL_SERVER_URL"), env_key)
        key = (self.server_url, self.api_key, self.timeout_ms, *env)
        if self._client is None or key != self._client_key:
            secret = self.api_key
            self._client = Mistral(
                api_key=secret.reveal() if secret is not None else None,
                server_url=self.server_url or None,
                timeout_ms=self.timeout_ms,
            )
            self._client_key = key
        return self._client

    @magic_arguments()
    @argument(
        "command",
        nargs="?",
        choices=["models", "reset"],
        help="Line magic only: 'models' lists the server's models, 'reset' forgets the "
        "conversation.",
    )
    @argument("-m", "--model", help="Model (default: MistralMagics.model).")
    @argument("-o", "--out", help="Also bind the reply to this variable (always: _mistral).")
    @argument("-s", "--system", help="System prompt (default: MistralMagics.system).")
    @argument("-t", "--temperature", type=float, help="Sampling temperature.")
    @argument("--max-tokens", type=int, help="Cap on the reply's tokens.")
    @argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="markdown",
        help="markdown (default), text (plain), or code (the reply's code goes into a "
        "new cell below).",
    )
    @argument(
        "-c",
        "--continue",
        dest="cont",
        action="store_true",
        help="Continue the conversation of the previous %%%%mistral reply.",
    )
    @argument(
        "--bg",
        action="store_true",
        help="Stream in the background: the cell returns at once, a Stop button stops "
        "the reply, `await reply` waits for it.",
    )
    @argument(
        "--raw", action="store_true", help="Send the prompt as written: no {name} interpolation."
    )
    @line_cell_magic
    def mistral(self, line: str, cell: str | None = None) -> None:
        """Ask a Mistral model; the reply streams in as Markdown and is bound to a variable.

        The prompt is the cell's body. ``{name}``, ``{name.attr}``, ``{name[key]}``,
        ``{In[3]}`` and ``{Out[3]}`` are replaced by their values; ``{{`` and ``}}`` are
        literal braces. Line magic: ``%mistral models`` and ``%mistral reset``.
        """
        # POSIX splitting, so that -s "Be brief." gives the words without their quotes
        args = self.mistral.parser.parse_args(arg_split(line, posix=True))
        if cell is None:
            return self._command(args.command)
        if args.command is not None:
            raise CellError(ValueError(f"{args.command!r} is a line-magic command"), None)
        self._ask(args, cell)
        return None

    def _command(self, command: str | None) -> None:
        if command == "reset":
            self.last_reply = None
            print("Conversation forgotten; the next %%mistral -c starts afresh.")
        elif command == "models":
            try:
                models = self.client().models.list()
            except MistralError as exc:
                raise CellError(exc, None) from None
            for card in models.data:
                print(plain(str(card.id)))  # server text: no clickable javascript: ids
        else:
            print(
                "Usage: %%mistral [options] in a cell, or %mistral models / %mistral reset. "
                "See %%mistral?"
            )

    def _ask(self, args: Any, cell: str) -> None:
        user_ns = self.shell.user_ns
        prompt = (cell if args.raw else interpolate(cell, user_ns)).strip("\n")
        history = self.last_reply.messages if args.cont and self.last_reply else []
        model = args.model or self.model
        messages = build_messages(prompt, system=args.system or self.system, history=history)
        options = {
            "temperature": args.temperature if args.temperature is not None else self.temperature,
            "max_tokens": args.max_tokens if args.max_tokens is not None else self.max_tokens,
        }
        reply = Reply(model, messages)
        name = args.out or LATEST
        user_ns[LATEST] = reply
        if args.out:
            user_ns[args.out] = reply
        self.last_reply = reply
        view = LiveView(
            reply,
            fmt=args.format,
            max_updates_per_second=self.max_updates_per_second,
            background=args.bg,
        )
        client = self.client()
        if args.bg:
            start_background(
                lambda: client.chat.stream_async(model=model, messages=messages, **options),
                reply,
                view,
                kernel_loop(),
            )
            return
        try:
            drive(
                lambda: client.chat.stream(model=model, messages=messages, **options), reply, view
            )
        except MistralError as exc:
            raise CellError(exc, name) from None
        except KeyboardInterrupt:
            raise Interrupted(f"stopped; the partial reply is in `{name}`") from None
        if args.format == "code":
            code = code_of(reply.text)
            self.shell.set_next_input(code if code is not None else reply.text, replace=False)
