"""The items of a batch and the prompt each one becomes.

Items are drawn lazily (a generator of a million rows is never held whole); pandas is only
looked at, never imported, so it stays optional. A template is filled with the same brace rules
as ``%%mistral`` (``nb_mistral._interpolate``): ``{field}`` reads a dict key, a DataFrame
column, a namedtuple field or an attribute, ``{item}`` is the item itself, and braces that name
nothing are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any

from .._defaults import build_messages
from .._interpolate import interpolate
from .._request import MessageLike

PromptResult = str | Sequence[MessageLike]
Prompt = str | Callable[[Any], PromptResult]


class ItemNamespace(Mapping[str, Any]):
    """The names a template may use for one item."""

    def __init__(self, item: Any) -> None:
        self._item = item

    def __getitem__(self, name: str) -> Any:
        if name == "item":
            return self._item
        item = self._item
        if isinstance(item, Mapping):
            return item[name]
        if hasattr(item, "_asdict"):  # a namedtuple
            return item._asdict()[name]
        if _is_pandas(item, "Series"):  # a DataFrame row
            return item[name]
        try:
            return getattr(item, name)
        except AttributeError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(("item",))

    def __len__(self) -> int:
        return 1


def messages_for(prompt: Prompt, item: Any, system: str | None) -> list[dict[str, Any]]:
    """The messages one item sends: the template filled, or what the callable returned."""
    filled = prompt(item) if callable(prompt) else interpolate(prompt, ItemNamespace(item))
    if not isinstance(filled, (str, Sequence)):
        raise TypeError(f"a prompt callable must return str or messages, not {type(filled)}")
    return build_messages(filled, system=system)


@dataclass(frozen=True)
class Items:
    """What a batch runs over: the items in order, their labels, and the pandas index (if any)
    that ``Batch.to_pandas`` aligns to."""

    source: Iterable[Any]
    total: int | None
    pandas_index: Any = None  # the input's index when the input was a Series or a DataFrame
    series_name: Hashable = None

    @classmethod
    def of(cls, items: Iterable[Any]) -> Items:
        if _is_pandas(items, "DataFrame"):
            frame: Any = items
            return cls(_rows(frame), len(frame), frame.index)
        if _is_pandas(items, "Series"):
            series: Any = items
            return cls(_series(series), len(series), series.index, series.name)
        total = len(items) if isinstance(items, Sized) else None
        return cls(items, total)

    def labelled(self) -> Iterator[tuple[Hashable, Any]]:
        """(label, item) in input order: the pandas label, else the position."""
        if self.pandas_index is not None:
            yield from self.source
        else:
            yield from enumerate(self.source)


def _rows(frame: Any) -> Iterator[tuple[Hashable, dict[str, Any]]]:
    columns = [str(column) for column in frame.columns]
    for label, values in zip(frame.index, frame.itertuples(index=False, name=None), strict=True):
        yield label, dict(zip(columns, values, strict=True))


def _series(series: Any) -> Iterator[tuple[Hashable, Any]]:
    yield from zip(series.index, series, strict=True)


def _is_pandas(value: Any, name: str) -> bool:
    """Whether ``value`` is a pandas ``name``, without importing pandas."""
    return any(
        cls.__name__ == name and cls.__module__.startswith("pandas") for cls in type(value).__mro__
    )
