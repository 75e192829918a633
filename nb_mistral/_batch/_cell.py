"""``%%mistral --over NAME -o results``: the cell is the template, ``NAME`` the items.

The magic parses its options and hands over here, so that ``_magics`` stays about one reply.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from .._client import Mistral
from ._api import map as map_items
from ._drive import BatchInterrupted

DEFAULT_OUT = "_mistral_batch"


class CellInterrupted(BatchInterrupted):
    """A kernel interrupt stopped the cell's batch: short, and it says where the results are."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mKeyboardInterrupt: {self.args[0]}\x1b[0m"]


def run_over(
    namespace: MutableMapping[str, Any],
    items_name: str,
    template: str,
    *,
    out: str | None,
    model: str,
    system: str | None,
    options: dict[str, Any],
    concurrency: int | None,
    background: bool,
    client: Mistral,
) -> None:
    """Run the template over ``namespace[items_name]`` and bind the ``Batch`` to ``out``."""
    from IPython.core.error import UsageError

    if items_name not in namespace:
        raise UsageError(f"--over {items_name}: no such variable in the notebook")
    name = out or DEFAULT_OUT
    try:
        batch = map_items(
            template,
            namespace[items_name],
            model=model,
            system=system,
            concurrency=concurrency or 8,
            wait=not background,
            client=client,
            **options,
        )
    except BatchInterrupted as stopped:
        namespace[name] = stopped.batch
        interrupted = CellInterrupted(stopped.batch)
        interrupted.args = (f"batch stopped; the finished replies are in `{name}`",)
        raise interrupted from None
    namespace[name] = batch
