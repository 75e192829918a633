"""Python functions as tools: a JSON schema from each signature and docstring, and calls the
model asks for run safely.

Pydantic does the work: the parameters become a model (``create_model``) whose JSON schema is
the tool's ``parameters`` and whose validation checks the model's arguments. Only the functions
the user passed are ever called; an unknown name, arguments that do not validate, or a function
that raises all become an error *result* sent back to the model, never an exception in the cell.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ._models import ToolCall

MAX_RESULT_CHARS = 20_000
_PARAM_LINE = re.compile(r"^\s*(?::param\s+)?\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ToolResult:
    """One call and what goes back to the model (``ok`` False: the content is an error)."""

    call: ToolCall
    content: str
    ok: bool

    def message(self) -> dict[str, Any]:
        """The ``tool`` message that answers the call."""
        return {
            "role": "tool",
            "content": self.content,
            "tool_call_id": self.call.id,
            "name": self.call.function.name,
        }


class Tool:
    """One user function: its schema, and how to validate arguments and call it."""

    def __init__(self, function: Callable[..., Any]) -> None:
        if not callable(function) or not getattr(function, "__name__", None):
            raise TypeError(f"a tool must be a named function, not {function!r}")
        self.function = function
        self.name: str = function.__name__
        self.is_async = inspect.iscoroutinefunction(function)
        summary, described = _docstring(inspect.getdoc(function) or "")
        self.description = summary
        self.arguments = _arguments_model(function, described)

    def spec(self) -> dict[str, Any]:
        """The ``tools`` entry of the request."""
        parameters = self.arguments.model_json_schema()
        parameters.pop("title", None)
        function: dict[str, Any] = {"name": self.name, "parameters": parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def bind(self, raw: str | Mapping[str, Any]) -> dict[str, Any]:
        """The validated keyword arguments (``ValidationError`` / ``ValueError`` if not)."""
        given = json.loads(raw or "{}") if isinstance(raw, str) else dict(raw)
        if not isinstance(given, dict):
            raise ValueError(f"the arguments must be a JSON object, not {type(given).__name__}")
        checked = self.arguments.model_validate(given)
        return {name: getattr(checked, name) for name in type(checked).model_fields}


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before any parameter section) and each parameter's text, from
    Google (``name (type): text``), NumPy (``name : type`` then indented text) or Sphinx
    (``:param name: text``) docstrings."""
    summary: list[str] = []
    described: dict[str, str] = {}
    in_params = False
    last: tuple[str, int, bool] | None = None  # parameter, its indent, whether NumPy style
    for line in doc.splitlines():
        indent = len(line) - len(line.lstrip())
        if _SECTION.match(line):
            in_params, last = True, None
            continue
        if in_params and set(line.strip()) == {"-"}:
            continue  # NumPy style underlines its section titles
        if in_params and last is not None and line.strip() and indent > last[1]:
            name, _, numpy = last
            more = line.strip()
            described[name] = more if numpy else f"{described[name]} {more}"
            last = (name, last[1], False)
            continue
        match = _PARAM_LINE.match(line)
        if (in_params or line.strip().startswith(":param")) and match:
            described[match.group(1)] = match.group(2).strip()
            numpy = " : " in line and not line.strip().startswith(":param")
            last = (match.group(1), indent, numpy)
            continue
        if in_params and line.strip() and not line.startswith((" ", "\t")):
            in_params, last = False, None  # the next section (Returns:, ...)
        if not in_params and not line.strip().startswith(":"):
            summary.append(line)
    description = "\n".join(summary).strip()
    for section in ("\nReturns", "\nRaises", "\nYields", "\nExamples"):
        description = description.split(section)[0].strip()
    return description, described


def _arguments_model(function: Callable[..., Any], described: Mapping[str, str]) -> type[BaseModel]:
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:
        raise TypeError(f"the annotations of {function.__name__} do not resolve: {exc}") from None
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue  # the model can only fill named parameters
        annotation = hints.get(name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (annotation, _field(default, described.get(name)))
    try:
        return create_model(function.__name__, __config__=ConfigDict(extra="forbid"), **fields)
    except Exception as exc:  # a parameter type pydantic cannot describe
        raise TypeError(f"{function.__name__} cannot be a tool: {exc}") from None


def _field(default: Any, description: str | None) -> Any:
    from pydantic import Field

    return Field(default, description=description)


class Toolbox:
    """The functions of one request, by name."""

    def __init__(self, functions: Iterable[Callable[..., Any]]) -> None:
        self.tools: dict[str, Tool] = {}
        for function in functions:
            tool = function if isinstance(function, Tool) else Tool(function)
            self.tools[tool.name] = tool

    @classmethod
    def of(cls, tools: Any) -> Toolbox | None:
        """A toolbox when ``tools`` holds callables; None for none, or for JSON specs only
        (those are the caller's to run)."""
        if not tools or not any(callable(tool) for tool in tools):
            return None
        return cls(tools)

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self.tools.values()]

    def _prepare(self, call: ToolCall) -> tuple[Tool, dict[str, Any]] | ToolResult:
        tool = self.tools.get(call.function.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return _error(call, f"there is no tool named {call.function.name!r} (tools: {known})")
        try:
            return tool, tool.bind(call.function.arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            return _error(call, f"invalid arguments for {tool.name}: {problems}")
        except ValueError as exc:
            return _error(call, f"invalid arguments for {tool.name}: {exc}")

    def run(self, call: ToolCall) -> ToolResult:
        """Validate and call, in this thread (an async function on a loop of its own when this
        thread's loop is busy running us)."""
        prepared = self._prepare(call)
        if isinstance(prepared, ToolResult):
            return prepared
        tool, arguments = prepared
        try:
            value = tool.function(**arguments)
            if inspect.isawaitable(value):
                value = _await_elsewhere(value)
        except Exception as exc:
            return _error(call, f"{type(exc).__name__}: {exc}")
        return ToolResult(call, _result_text(value), ok=True)

    async def arun(self, call: ToolCall) -> ToolResult:
        """Validate and call; an async function is awaited on the running (kernel) loop."""
        prepared = self._prepare(call)
        if isinstance(prepared, ToolResult):
            return prepared
        tool, arguments = prepared
        try:
            value = tool.function(**arguments)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return _error(call, f"{type(exc).__name__}: {exc}")
        return ToolResult(call, _result_text(value), ok=True)


def tool_specs(tools: Any) -> Any:
    """The request's ``tools`` field: functions become their specs, JSON specs pass as they are."""
    if not tools:
        return tools
    return [Tool(tool).spec() if callable(tool) else tool for tool in tools]


def _error(call: ToolCall, why: str) -> ToolResult:
    return ToolResult(call, f"error: {why}", ok=False)


def _result_text(value: Any) -> str:
    text = value if isinstance(value, str) else pydantic_core.to_json(value, fallback=repr).decode()
    if len(text) > MAX_RESULT_CHARS:
        cut = len(text) - MAX_RESULT_CHARS
        text = text[:MAX_RESULT_CHARS] + f"\n[... {cut} more characters left out]"
    return text


def _await_elsewhere(awaitable: Any) -> Any:
    """Await from sync code: here when no loop runs in this thread, else on a loop in a helper
    thread (the kernel's loop is blocked by the cell that is waiting for the answer)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wrap(awaitable))
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = asyncio.run(_wrap(awaitable))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="nb_mistral-tool")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


async def _wrap(awaitable: Any) -> Any:
    return await awaitable
