"""``%%mistral``: a prompt in a cell, the reply streamed live and bound to a variable.

Defaults are traitlets (``%config MistralMagics.model = ...``). The API key is held as a secret
whose repr is hidden, so ``%config MistralMagics`` lists the trait without showing its value.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.process import arg_split
from traitlets import Float, Int, TraitType, Unicode

from ._api import DEFAULT_MODEL, build_messages
from ._client import Mistral, _Secret
from ._code import first_code_block
from ._errors import APIError, MistralError
from ._interpolate import interpolate
from ._live import FORMATS, LiveView
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
        return [f"\x1b[31m{self}\x1b[0m"]


class Interrupted(KeyboardInterrupt):
    """A kernel interrupt during a reply: short, and it says where the partial reply is."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mKeyboardInterrupt: {self}\x1b[0m"]


def current_cell_id(shell: Any) -> str | None:
    """The id of the cell being run: JupyterLab and Notebook 7 send it in the execute
    request's metadata (``cellId``); elsewhere there is none."""
    header = getattr(shell, "parent_header", None) or {}
    cell_id = (header.get("metadata") or {}).get("cellId")
    return cell_id if isinstance(cell_id, str) and cell_id else None


def check_options(parser: Any, argv: list[str]) -> None:
    """Name an unknown option and the closest valid one. Left to argparse, ``--max_tokens 10``
    reads as the command ``10`` ("invalid choice") and ``-modle x`` as ``-m odle``."""
    takes_value: dict[str, bool] = {}
    for action in parser._actions:
        for option in action.option_strings:
            takes_value[option] = action.nargs != 0
    long_options = [option for option in takes_value if option.startswith("--")]
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token == "--":
            return
        if not token.startswith("-") or token == "-" or _is_number(token):
            continue
        option = token.split("=", 1)[0]
        if option in takes_value:
            skip = takes_value[option] and "=" not in token
            continue
        spelled = "--" + option.lstrip("-").replace("_", "-")
        close = difflib.get_close_matches(spelled, long_options, n=1, cutoff=0.6)
        attached = option[:2] in takes_value and not option.startswith("--")
        if attached and not close:
            continue  # -mmistral-small-latest: a short option with its value attached
        hint = f"; did you mean {close[0]}?" if close else ""
        raise UsageError(f"unknown option {option}{hint} (see %%mistral? for the options)")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


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
        self._code_cells: set[str] = set()  # cells whose -f code reply was inserted already

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

    @magic_arguments(name="%mistral")  # the usage line then reads %%mistral
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

        The prompt is the cell's body. {name}, {name.attr}, {name[key]}, {In[3]} and
        {Out[3]} are replaced by their values; {{ and }} are literal braces.
        As a line magic: %mistral models, %mistral reset.
        """
        # POSIX splitting, so that -s "Be brief." gives the words without their quotes
        argv = arg_split(line, posix=True)
        check_options(self.mistral.parser, argv)
        args = self.mistral.parser.parse_args(argv)
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
                print(card.id)
        else:
            print(
                "Usage: %%mistral [options] in a cell, or %mistral models / %mistral reset. "
                "See %%mistral?"
            )

    def _ask(self, args: Any, cell: str) -> None:
        if not cell.strip():
            raise UsageError("the cell has no prompt: write it on the lines below %%mistral")
        if args.format == "code" and args.bg:
            raise UsageError(
                "-f code cannot stream in the background: the code cell is inserted when the "
                "cell finishes, and a --bg cell finishes at once. Drop --bg (or -f code)."
            )
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
        view = LiveView(reply, fmt=args.format, max_updates_per_second=self.max_updates_per_second)
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
            if args.format == "code":
                self._insert_code(reply, name)
            raise Interrupted(f"stopped; the partial reply is in `{name}`") from None
        if args.format == "code":
            self._insert_code(reply, name)

    def _insert_code(self, reply: Reply, name: str) -> None:
        """``-f code``: the reply's code into a new cell below, once per cell: running the
        same cell again (or "Run All" after a restart) must not stack up copies."""
        block = first_code_block(reply.text)
        if block is None:
            print(f"No code block in the reply: nothing inserted (the reply is in `{name}`).")
            return
        cell_id = current_cell_id(self.shell)
        if cell_id is not None and cell_id in self._code_cells:
            print(
                "The code was not inserted again: this cell already put its code in a cell "
                f"below when it first ran. The new reply is in `{name}`."
            )
            return
        code = block.code
        if not block.closed:
            why = "it stopped" if reply.stopped else f"finish reason: {reply.finish_reason}"
            code = f"# nb_mistral: the reply was cut inside this code block ({why})\n{code}"
        self.shell.set_next_input(code, replace=False)
        if cell_id is not None:
            self._code_cells.add(cell_id)
