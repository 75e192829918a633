"""``%%mistral``: a prompt in a cell, the reply streamed live and bound to a variable.

Defaults are traitlets (``%config MistralMagics.model = ...``). The API key is checked when it
is set and held as a ``Secret`` (the trait's stored value too), so neither ``%config
MistralMagics`` nor ``vars(magics)`` can show it; ``%mistral config`` says only whether one is set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.utils.process import arg_split  # type: ignore[attr-defined]
from traitlets import Bunch, Float, HasTraits, Int, TraitError, TraitType, Unicode, validate
from traitlets.config import Config

from ._cellprompt import NamespaceError, cell_prompt, schema_option, tools_option
from ._client import Mistral
from ._code import CodeCells, code_cells_beside, first_code_block
from ._conversation import Conversation
from ._defaults import DEFAULT_MODEL, ENV_API_KEY, build_messages, client_for, model_for
from ._errorlog import ErrorLog, ErrRef
from ._errors import MistralError
from ._failures import Origin
from ._live import FORMATS, LiveView
from ._magic_support import (
    CellError,
    Interrupted,
    SecretString,
    argument,
    check_options,
    magic_arguments,
    parser_of,
    scrub,
)
from ._notebook_store import (
    STORE_COMMANDS,
    current_cell_id,
    last_conversation,
    notebook_path,
    store_command,
    store_in_use,
)
from ._render import plain
from ._reply import Reply
from ._request import ChatOptions
from ._run import drive, kernel_loop, start_background
from ._stored import StoreSettings, notebook_settings
from .store import CacheMode, store_path

LATEST = "_mistral"


@magics_class
class MistralMagics(Magics):
    """The ``%%mistral`` cell magic and ``%mistral`` line magic."""

    model = Unicode(DEFAULT_MODEL, help="Model used when -m is not given.").tag(config=True)
    server_url = Unicode(
        None,
        allow_none=True,
        help="Server to talk to; default MISTRAL_SERVER_URL, else https://api.mistral.ai "
        "(`%mistral config` shows the one in use).",
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
    store = Unicode(
        None,
        allow_none=True,
        help="Reply store file, or 'off'; default NB_MISTRAL_STORE, else "
        "~/.nb_mistral/replies.sqlite3. Every reply is recorded there.",
    ).tag(config=True)
    cache = Unicode(
        None,
        allow_none=True,
        help="'off' (ask the server), 'replay' (answer an identical request from the store) or "
        "'only' (never ask: a miss is an error); default NB_MISTRAL_CACHE, else 'off'.",
    ).tag(config=True)
    max_context_chars = Int(
        8_000, help="Characters at most for one {df} table or {Err} traceback in a prompt."
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.last_reply: Reply | None = None
        self._continue_from_store = True  # -c after a restart: this notebook's last record
        self._code_cells: CodeCells | None = None  # cells whose -f code reply was inserted
        self._code_cells_path: Path | None = None
        self._errors = ErrorLog()  # {Err} / {Err[n]}: the exceptions of the cells
        if shell is not None:
            self._errors.attach(shell)

    def update_config(self, config: Config) -> None:
        """``%config MistralMagics.api_key = '...'`` hands every configurable a ``Config``
        holding the key as typed, and each merges it into its own (the shell's too): the key is
        turned into a ``Secret`` in all of them, so no config object holds it in clear."""
        try:
            scrub(config)
            super().update_config(config)
        finally:  # what the others merged: the key as a secret, an unusable setting dropped
            holders = [self, self.shell, *getattr(self.shell, "configurables", [])]
            for holder in holders:
                held = getattr(holder, "config", None)
                if isinstance(held, Config):
                    with contextlib.suppress(MistralError, TraitError):
                        scrub(held)

    @validate("cache")
    def _check_cache(self, proposal: Bunch) -> str | None:
        value: str | None = proposal["value"]
        if value is not None:
            try:
                CacheMode.parse(value)
            except ValueError as exc:
                raise TraitError(str(exc)) from None
        return value

    @validate("server_url")
    def _check_server_url(self, proposal: Bunch) -> str | None:
        """A URL without a scheme is refused when it is set, not after a round of retries."""
        url: str | None = proposal["value"]
        if url:
            try:
                Origin.of(url)
            except MistralError as exc:  # a TraitError, so that traitlets keeps the old value
                raise TraitError(str(exc)) from None
        return url

    @property
    def _shell(self) -> InteractiveShell:
        if self.shell is None:
            raise RuntimeError("%%mistral needs an IPython shell")
        return self.shell

    def client(self) -> Mistral:
        """The shared client for the current settings (the environment filling in the rest:
        a key set with os.environ after a first try is used)."""
        return client_for(self.api_key, self.server_url or None, self.timeout_ms)

    @magic_arguments(name="%mistral")  # the usage line then reads %%mistral
    @argument(
        "command",
        nargs="?",
        choices=["models", "reset", "config", *STORE_COMMANDS],
        help="Line magic only: 'models' lists the server's models, 'reset' forgets the "
        "conversation, 'config' shows the server and model in use, 'history [-n N] [TEXT]' "
        "lists recorded replies, 'show ID' shows one again, 'resume ID' continues its "
        "conversation with the next %%%%mistral -c.",
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
    @argument(
        "--cache",
        dest="cache",
        action="store_const",
        const="replay",
        help="Answer from the reply store if this exact request was recorded (else ask and "
        "record).",
    )
    @argument(
        "--no-cache", dest="cache", action="store_const", const="off", help="Always ask the server."
    )
    @argument(
        "--refresh",
        action="store_true",
        help="Ask the server again; the new reply supersedes the recorded one.",
    )
    @argument(
        "--schema",
        metavar="NAME",
        help="Structured output: a Pydantic model class (or JSON schema) in the notebook; "
        "the reply's .parsed is the validated object.",
    )
    @argument(
        "--tools",
        metavar="F,G",
        help="Python functions the model may call (comma-separated names in the notebook).",
    )
    @argument("words", nargs="*", help=argparse.SUPPRESS)
    @argument("-n", type=int, default=20, help="history: how many records (default 20).")
    @argument(
        "--over",
        metavar="NAME",
        help="Run the cell as a template over the items in NAME (a list, generator, Series or "
        "DataFrame; {field} per item, {item} for the item); -o binds the Batch.",
    )
    @argument("--concurrency", type=int, help="With --over: requests in flight (default 8).")
    @line_cell_magic
    def mistral(self, line: str, cell: str | None = None) -> None:
        """Ask a Mistral model; the reply streams in as Markdown and is bound to a variable.

        The prompt is the cell's body. {name}, {name.attr}, {name[key]}, {In[3]} and
        {Out[3]} are replaced by their values; {{ and }} are literal braces. A figure or image
        ({fig}) is sent as an image, a DataFrame, Series or array ({df}; {df:all} every row)
        as a bounded table, {Err} / {Err[n]} as the last / cell n's exception. A name that
        does not resolve is left as written, and the cell says so.
        As a line magic: %mistral models, %mistral reset.
        """
        # POSIX splitting, so that -s "Be brief." gives the words without their quotes
        argv = arg_split(line, posix=True)
        parser = parser_of(vars(MistralMagics)["mistral"])
        check_options(parser, argv)
        args = parser.parse_intermixed_args(argv)  # history -n 5 TEXT: words after options
        if cell is None:
            return self._command(args.command, args)
        if args.command is not None or args.words:
            raise CellError(ValueError(f"{args.command!r} is a line-magic command"), None)
        self._ask(args, cell)
        return None

    def _command(self, command: str | None, args: Any) -> None:
        if command in STORE_COMMANDS:
            self._store_command(command, args)
        elif command == "config":
            print(self._config_text())
        elif command == "reset":
            self.last_reply = None
            self._continue_from_store = False
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
                "Usage: %%mistral [options] in a cell, or %mistral models / reset / config / "
                "history / show ID / resume ID. See %%mistral?"
            )

    def _server_in_use(self) -> str:
        try:
            origin = Origin.of(self.server_url or None)
        except MistralError as exc:
            return f"unusable: {exc}"
        return f"{origin.url} ({origin.setting()})"

    def _key_in_use(self) -> str:
        if self.api_key is not None:
            return "set (MistralMagics.api_key)"
        if os.environ.get(ENV_API_KEY, "").strip():
            return f"set ({ENV_API_KEY})"
        return f"not set (neither MistralMagics.api_key nor {ENV_API_KEY})"

    @classmethod
    def class_get_trait_help(
        cls,
        trait: TraitType[Any, Any],
        inst: HasTraits | None = None,
        helptext: str | None = None,
    ) -> str:
        """``%config MistralMagics`` also says which server and whether which key is in use
        (the environment's, when a trait is unset)."""
        text = super().class_get_trait_help(trait, inst, helptext)
        if isinstance(inst, MistralMagics) and trait.name == "server_url":
            text += f"\n    In use: {inst._server_in_use()}"
        elif isinstance(inst, MistralMagics) and trait.name == "api_key":
            text += f"\n    In use: {inst._key_in_use()}"
        return text

    def _config_text(self) -> str:
        """The settings actually in use, and where each comes from; of the key, only whether
        one is set."""
        server, key = self._server_in_use(), self._key_in_use()
        model = self.model + (" (the default)" if self.model == DEFAULT_MODEL else "")
        lines = [f"server:  {server}", f"model:   {model}", f"API key: {key}"]
        for name in ("system", "temperature", "max_tokens", "timeout_ms"):
            value = getattr(self, name)
            if value is not None:
                lines.append(f"{name}: {value!r}")
        lines.append(f"max_updates_per_second: {self.max_updates_per_second:g}")
        lines.append(f"reply store: {store_in_use(self.store or None)}")
        cache = CacheMode.parse(self.cache) if self.cache is not None else CacheMode.from_env()
        lines.append(f"cache: {cache.value}")
        return "\n".join(lines)

    def _ask(self, args: Any, cell: str) -> None:
        if not cell.strip():
            raise UsageError("the cell has no prompt: write it on the lines below %%mistral")
        if args.format == "code" and args.bg:
            raise UsageError(
                "-f code cannot stream in the background: the code cell is inserted when the "
                "cell finishes, and a --bg cell finishes at once. Drop --bg (or -f code)."
            )
        try:  # settings that cannot work (a server URL without a scheme) end the cell shortly
            client = self.client()
        except MistralError as exc:
            raise CellError(exc, None) from None
        if args.over:
            return self._over(args, cell, client)
        user_ns = self._shell.user_ns
        history = self._conversation() if args.cont else []
        try:
            prompt, note = cell_prompt(
                cell,
                user_ns,
                raw=args.raw,
                max_chars=self.max_context_chars,
                errors=ErrRef(self._errors),
            )
            messages = build_messages([prompt], system=args.system or self.system, history=history)
            options: ChatOptions = {
                "temperature": args.temperature
                if args.temperature is not None
                else self.temperature,
                "max_tokens": args.max_tokens if args.max_tokens is not None else self.max_tokens,
                "response_format": schema_option(args.schema, user_ns),
                "tools": tools_option(args.tools, user_ns),
            }
        except (MistralError, NamespaceError) as exc:
            raise CellError(exc, None) from None
        if note:
            print(note)
        chosen = args.model or (self.model if self.model != DEFAULT_MODEL else None)
        model = model_for(messages, chosen)
        reply = Reply(model, messages)
        store = self._store_settings(client, args)
        rounds = Conversation.of(client, model, reply, options, store=store)
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
        if args.bg:
            start_background(rounds.open_async, reply, view, kernel_loop())
            return
        try:
            drive(rounds.open, reply, view)
        except MistralError as exc:
            raise CellError(exc, name) from None
        except KeyboardInterrupt:
            if args.format == "code":
                self._insert_code(reply, name)
            raise Interrupted(f"stopped; the partial reply is in `{name}`") from None
        if args.format == "code":
            self._insert_code(reply, name)

    def _store_settings(self, client: Mistral, args: Any) -> StoreSettings:
        """How the cell's request goes through the reply store (``--cache`` / ``--no-cache``
        first, then ``MistralMagics.cache``, then ``NB_MISTRAL_CACHE``)."""
        cache = args.cache if args.cache is not None else self.cache
        try:
            return notebook_settings(
                client,
                cache,
                store=self.store or None,
                refresh=args.refresh,
                notebook=notebook_path(self._shell),
                cell_id=current_cell_id(self._shell),
            )
        except ValueError as exc:
            raise CellError(exc, None) from None

    def _conversation(self) -> list[dict[str, Any]]:
        """What ``-c`` continues: the last reply of this kernel, else (after a restart) this
        notebook's last recorded one."""
        if self.last_reply is not None:
            return self.last_reply.messages
        if not self._continue_from_store:  # %mistral reset
            return []
        return last_conversation(self.store or None, notebook_path(self._shell))

    def _store_command(self, command: str, args: Any) -> None:
        words, mups = " ".join(args.words), self.max_updates_per_second
        resumed = store_command(command, words, args.n, self.store or None, mups)
        if resumed is not None:
            self.last_reply = self._shell.user_ns[LATEST] = resumed

    def _over(self, args: Any, cell: str, client: Mistral) -> None:
        """``--over NAME``: the cell as a template over NAME's items (``nb_mistral.map``)."""
        from ._batch._cell import run_over

        options = {
            "temperature": args.temperature if args.temperature is not None else self.temperature,
            "max_tokens": args.max_tokens if args.max_tokens is not None else self.max_tokens,
        }
        try:
            run_over(
                self._shell.user_ns, args.over, cell.strip("\n"), out=args.out,
                model=args.model or self.model, system=args.system or self.system,
                options=options, concurrency=args.concurrency, background=args.bg, client=client,
            )  # fmt: skip
        except MistralError as exc:
            raise CellError(exc, args.out) from None

    def _code_registry(self) -> CodeCells:
        """The registry of cells that inserted code, beside the store in use (kept while the
        store setting holds, so it also remembers when the store is off)."""
        path = store_path(self.store or None)
        if self._code_cells is None or self._code_cells_path != path:
            self._code_cells, self._code_cells_path = code_cells_beside(path), path
        return self._code_cells

    def _insert_code(self, reply: Reply, name: str) -> None:
        """``-f code``: the reply's code into a new cell below, once per cell: running the
        same cell again (or "Run All" after a restart) must not stack up copies."""
        block = first_code_block(reply.text)
        if block is None:
            print(f"No code block in the reply: nothing inserted (the reply is in `{name}`).")
            return
        cell_id = current_cell_id(self._shell)
        code_cells = self._code_registry()
        key = CodeCells.key(notebook_path(self._shell), cell_id) if cell_id else None
        if key is not None and key in code_cells:
            print(
                "The code was not inserted again: this cell already put its code in a cell "
                f"below when it first ran. The new reply is in `{name}`."
            )
            return
        code = block.code
        if not block.closed:
            why = "it stopped" if reply.stopped else f"finish reason: {reply.finish_reason}"
            code = f"# nb_mistral: the reply was cut inside this code block ({why})\n{code}"
        self._shell.set_next_input(code, replace=False)
        if key is not None:
            code_cells.add(key)
