"""What ``%%mistral`` needs around the magic itself: IPython's decorators typed, options
checked before argparse misreads them, the API key's trait, and errors that end a cell in one
line."""

from __future__ import annotations

import difflib
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from traitlets import TraitError, TraitType
from traitlets.config import Config

from ._errors import APIError, MistralError
from ._failures import Origin
from ._render import plain
from ._secret import Secret

_F = TypeVar("_F", bound=Callable[..., Any])
# IPython's decorators are untyped; they return the function they are given.
magic_arguments = cast(Callable[..., Callable[[_F], _F]], _magic_arguments.magic_arguments)
argument = cast(Callable[..., Callable[[_F], _F]], _magic_arguments.argument)


def parser_of(magic: Any) -> ArgumentParser:
    """The argument parser ``@magic_arguments`` puts on a magic."""
    return cast(ArgumentParser, magic.parser)


def scrub(config: Config) -> None:
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
        # server text: no clickable javascript: in the front end's linkified error line
        return [f"\x1b[31m{plain(str(self))}\x1b[0m"]


class Interrupted(KeyboardInterrupt):
    """A kernel interrupt during a reply: short, and it says where the partial reply is."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mKeyboardInterrupt: {self}\x1b[0m"]


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
