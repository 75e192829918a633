"""``%%mistral``: a prompt in a cell, the reply streamed live and bound to a variable.

Defaults are traitlets (``%config MistralMagics.model = ...``). The API key is checked when it
is set and held as a ``Secret`` (the trait's stored value too), so neither ``%config
MistralMagics`` nor ``vars(magics)`` can show it; ``%mistral config`` says only whether one is set.
"""

from __future__ import annotations

import contextlib
import os
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments as _magic_arguments
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.utils.process import arg_split  # type: ignore[attr-defined]
from traitlets import Bunch, Float, HasTraits, Int, TraitError, TraitType, Unicode, validate
from traitlets.config import Config

from ._client import Mistral
from ._defaults import DEFAULT_MODEL, ENV_API_KEY, build_messages, client_for
from ._errors import APIError, MistralError
from ._failures import Origin
from ._interpolate import interpolate
from ._live import FORMATS, LiveView
from ._render import code_of
from ._reply import Reply
from ._request import ChatOptions
from ._run import drive, kernel_loop, start_background
from ._secret import Secret

LATEST = "_mistral"

_F = TypeVar("_F", bound=Callable[..., Any])
# IPython's decorators are untyped; they return the function they are given.
magic_arguments = cast(Callable[[], Callable[[_F], _F]], _magic_arguments.magic_arguments)
argument = cast(Callable[..., Callable[[_F], _F]], _magic_arguments.argument)


def _parser(magic: Any) -> ArgumentParser:
    """The argument parser ``@magic_arguments`` puts on a magic."""
    return cast(ArgumentParser, magic.parser)


def _scrub(config: Config) -> None:
    """In ``config``, replace a ``MistralMagics.api_key`` string by its ``Secret``; drop a
    key or server URL that cannot work, and raise."""
    if "MistralMagics" not in config:
        return
    section = config["MistralMagics"]
    if not isinstance(section, dict):
        return
    if isinstance(section.get("api_key"), str):
        try:
            section["api_key"] = Secret.of(section["api_key"])
        except MistralError:
            del section["api_key"]
            raise
    url = section.get("server_url")
    if isinstance(url, str) and url:
        try:
            Origin.of(url)
        except MistralError as exc:
            del section["server_url"]
            raise TraitError(str(exc)) from None


class SecretString(TraitType[Secret | None, Secret | str | None]):
    """A string trait whose value never prints (for the API key): checked when set (surrounding
    whitespace stripped, control characters refused) and stored as a ``Secret``."""

    default_value = None
    allow_none = True
    info_text = "a secret string (never displayed)"

    def validate(self, obj: Any, value: Any) -> Secret | None:
        if value is None or isinstance(value, (Secret, str)):
            return Secret.of(value)
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

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.last_reply: Reply | None = None

    def update_config(self, config: Config) -> None:
        """``%config MistralMagics.api_key = '...'`` hands every configurable a ``Config``
        holding the key as typed, and each merges it into its own (the shell's too): the key is
        turned into a ``Secret`` in all of them, so no config object holds it in clear."""
        try:
            _scrub(config)
            super().update_config(config)
        finally:  # what the others merged: the key as a secret, an unusable setting dropped
            holders = [self, self.shell, *getattr(self.shell, "configurables", [])]
            for holder in holders:
                held = getattr(holder, "config", None)
                if isinstance(held, Config):
                    with contextlib.suppress(MistralError, TraitError):
                        _scrub(held)

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

    @magic_arguments()
    @argument(
        "command",
        nargs="?",
        choices=["models", "reset", "config"],
        help="Line magic only: 'models' lists the server's models, 'reset' forgets the "
        "conversation, 'config' shows the server and model in use.",
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
        args = _parser(vars(MistralMagics)["mistral"]).parse_args(arg_split(line, posix=True))
        if cell is None:
            return self._command(args.command)
        if args.command is not None:
            raise CellError(ValueError(f"{args.command!r} is a line-magic command"), None)
        self._ask(args, cell)
        return None

    def _command(self, command: str | None) -> None:
        if command == "config":
            print(self._config_text())
        elif command == "reset":
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
                "Usage: %%mistral [options] in a cell, or %mistral models / reset / config. "
                "See %%mistral?"
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
        return "\n".join(lines)

    def _ask(self, args: Any, cell: str) -> None:
        try:  # settings that cannot work (a server URL without a scheme) end the cell shortly
            client = self.client()
        except MistralError as exc:
            raise CellError(exc, None) from None
        user_ns = self._shell.user_ns
        prompt = (cell if args.raw else interpolate(cell, user_ns)).strip("\n")
        history = self.last_reply.messages if args.cont and self.last_reply else []
        model = args.model or self.model
        messages = build_messages(prompt, system=args.system or self.system, history=history)
        options: ChatOptions = {
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
            self._shell.set_next_input(code if code is not None else reply.text, replace=False)
