"""Context and structure in a real ipykernel: ``{Err}`` from a cell that failed, and a
background reply (``--bg``) whose async tool is awaited on the kernel's own loop and whose
JSON is parsed into a Pydantic object."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel_harness import KernelHarness

from nb_mistral.emulator import Emulator

pytestmark = pytest.mark.timeout(120)

CHAT = "/v1/chat/completions"


@pytest.fixture(autouse=True)
def fresh(kernel_emulator: Emulator, nb_kernel: KernelHarness) -> Iterator[None]:
    nb_kernel.wait_quiet(0.2)
    kernel_emulator.tokens_per_second = None
    kernel_emulator.reset()
    yield


def last_content(emulator: Emulator) -> object:
    bodies = [r.json for r in emulator.requests if r.path == CHAT]
    return bodies[-1]["messages"][-1]["content"]


def test_err_is_the_failed_cells_traceback(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    nb_kernel.run("def ratio(a, b):\n    return a / b\n").check()
    failed = nb_kernel.execute("ratio(1, 0)")
    assert failed.status == "error"
    count = failed.reply["content"]["execution_count"]
    nb_kernel.run("%%mistral -o why\nWhy? {Err}", timeout=30).check()
    content = last_content(kernel_emulator)
    assert isinstance(content, str)
    assert content.startswith(f"Why? Exception in cell [{count}]:\n```\nTraceback")
    assert f"Cell In[{count}], line 1, in <module>\n    ratio(1, 0)\n" in content
    assert "ipykernel" not in content and "/tmp/" not in content
    assert content.endswith("ZeroDivisionError: division by zero\n```")


def test_background_reply_with_an_async_tool_and_a_schema(
    nb_kernel: KernelHarness, kernel_emulator: Emulator
) -> None:
    setup = """
import asyncio
from pydantic import BaseModel

loops = []

async def lookup(city: str) -> str:
    \"\"\"Population of a city.\"\"\"
    loops.append(asyncio.get_running_loop())
    await asyncio.sleep(0)
    return f"{city}: 2.1 million"

class Town(BaseModel):
    name: str
    rank: int
"""
    nb_kernel.run(setup).check()
    nb_kernel.run("%%mistral --bg --tools lookup -o found\nlookup Paris", timeout=30).check()
    done = nb_kernel.run(
        "_r = await found\n"
        "print(loops[0] is asyncio.get_running_loop(), found.messages[2]['content'])",
        timeout=30,
    ).check()
    assert done.stdout.strip() == "True Paris: 2.1 million"
    nb_kernel.run("%%mistral --bg --schema Town -o town\nThe town", timeout=30).check()
    parsed = nb_kernel.run("_t = await town\nprint(type(town.parsed).__name__, town.parse_error)")
    assert parsed.check().stdout.strip() == "Town None"
