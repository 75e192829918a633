"""The public surface: the names ``nb_mistral`` exports, where they say they live, and what
importing them costs (like httpx's ``test_exported_members``)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import nb_mistral
from nb_mistral import _errors

PUBLIC = {
    # the client and its resources
    "Mistral",
    "Chat",
    "Models",
    "PendingStream",
    "RetryPolicy",
    "ChatOptions",
    # streams
    "EventStream",
    "EventStreamAsync",
    "SSEDecoder",
    "ServerSentEvent",
    # errors
    "MistralError",
    "ConfigurationError",
    "NoAPIKeyError",
    "APIError",
    "RequestError",
    "StreamError",
    "CacheMiss",
    # wire models
    "AssistantMessage",
    "ChatCompletionChoice",
    "ChatCompletionResponse",
    "CompletionChunk",
    "CompletionEvent",
    "CompletionResponseStreamChoice",
    "DeltaMessage",
    "FunctionCall",
    "ModelCard",
    "ModelList",
    "OtherChunk",
    "SystemMessage",
    "TextChunk",
    "ThinkChunk",
    "ToolCall",
    "ToolMessage",
    "UsageInfo",
    "UserMessage",
    # structured output (chat.parse)
    "ParsedAssistantMessage",
    "ParsedChatCompletionChoice",
    "ParsedChatCompletionResponse",
    # the notebook layer (loaded on first use)
    "Reply",
    "astream",
    "load_ipython_extension",
    "show",
    "stream",
    # the reply store (loaded on first use)
    "Record",
    "history",
    # batch over data (loaded on first use)
    "Batch",
    "BatchError",
    "BatchInterrupted",
    "BatchJob",
    "MemoryCache",
    "ReplyCache",
    "amap",
    "batch_job",
}
NOT_STAR_IMPORTED = {"ChatWidget", "map"}  # needs ipywidgets; would shadow the builtin


def test_exported_members() -> None:
    assert set(nb_mistral.__all__) == PUBLIC
    assert nb_mistral.__all__ == sorted(nb_mistral.__all__)
    public_in_dir = {name for name in dir(nb_mistral) if not name.startswith("_")}
    assert public_in_dir == PUBLIC | NOT_STAR_IMPORTED


def test_every_public_name_says_it_lives_in_nb_mistral() -> None:
    for name in sorted(PUBLIC | NOT_STAR_IMPORTED):
        value = getattr(nb_mistral, name)
        assert value.__module__ == "nb_mistral", name
    assert repr(nb_mistral.APIError(401, "Unauthorized")).startswith("APIError(")
    assert str(nb_mistral.APIError) == "<class 'nb_mistral.APIError'>"


def test_errors_are_one_hierarchy() -> None:
    errors = [nb_mistral.ConfigurationError, nb_mistral.NoAPIKeyError, nb_mistral.APIError]
    errors += [nb_mistral.RequestError, nb_mistral.StreamError, nb_mistral.CacheMiss]
    for error in errors:
        assert issubclass(error, nb_mistral.MistralError)
        assert error.__name__ in (_errors.__doc__ or "")  # the hierarchy, drawn
    assert issubclass(nb_mistral.ConfigurationError, ValueError)


def test_what_public_calls_return_is_public() -> None:
    """Every type in the return annotation of a public method of the client is exported."""
    exported = {
        getattr(nb_mistral, name) for name in PUBLIC if inspect.isclass(getattr(nb_mistral, name))
    }
    for cls in (nb_mistral.Mistral, nb_mistral.Chat, nb_mistral.Models, nb_mistral.PendingStream):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_") and name not in ("__aenter__", "__await__"):
                continue
            returned = typing.get_type_hints(member, vars(sys.modules[member.__module__])).get(
                "return"
            )
            for part in _classes_in(returned):
                if part.__module__.startswith("nb_mistral"):
                    assert part in exported, f"{cls.__name__}.{name} returns {part.__name__}"


def _classes_in(annotation: object) -> list[type]:
    found = [annotation] if isinstance(annotation, type) else []
    # a parametrised pydantic generic (ParsedChatCompletionResponse[T]) is a class of its own
    generic = getattr(annotation, "__pydantic_generic_metadata__", None) or {}
    if generic.get("origin") is not None:
        found = [generic["origin"], *_classes_in_args(generic.get("args", ()))]
    origin = typing.get_origin(annotation)
    if isinstance(origin, type):
        found.append(origin)
    return found + _classes_in_args(typing.get_args(annotation))


def _classes_in_args(arguments: tuple[object, ...]) -> list[type]:
    return [part for argument in arguments for part in _classes_in(argument)]


def test_star_import_loads_no_ipython_nor_ipywidgets() -> None:
    code = (
        "import sys\n"
        "from nb_mistral import *\n"
        "assert Reply and stream and Mistral\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_notebook_layer_loads_on_first_use() -> None:
    code = (
        "import sys, nb_mistral\n"
        "before = 'IPython' in sys.modules\n"
        "nb_mistral.ChatWidget\n"
        "print(before, 'ipywidgets' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "True"]


def test_errors_survive_pickling() -> None:
    """An error sent to another process (multiprocessing, a parallel map) arrives whole."""
    import pickle

    api = pickle.loads(
        pickle.dumps(nb_mistral.APIError(401, "Unauthorized", body="{}", request_id="r"))
    )
    assert (api.status_code, api.message, api.body, api.request_id) == (
        401,
        "Unauthorized",
        "{}",
        "r",
    )
    assert str(api) == "401: Unauthorized"
    for error in (
        nb_mistral.NoAPIKeyError(),
        nb_mistral.StreamError("cut"),
        nb_mistral.RequestError("x"),
        nb_mistral.CacheMiss("mistral-small-latest", "Say hello"),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), str(again)) == (type(error), str(error))
