"""Notebook context in prompts, against the emulator on loopback: the request body the server
receives for each kind of input (figure, PIL image, bytes, path, DataFrame, Series, array,
``{Err}``), limits that stop a request before it is sent, and names that do not resolve.
``%%mistral`` runs in-process on an ``InteractiveShell``, as in test_magics."""

from __future__ import annotations

import base64
import io
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import Image as IPythonImage
from matplotlib.figure import Figure
from PIL import Image

import nb_mistral
from nb_mistral import Mistral
from nb_mistral._images import ContextError
from nb_mistral._magics import CellError
from nb_mistral._tables import describe_table
from nb_mistral.emulator import Emulator


def chat_bodies(emulator: Emulator) -> list[Any]:
    return [r.json for r in emulator.requests if r.path.endswith("/chat/completions")]


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def figure() -> Figure:
    fig = Figure(figsize=(4, 3), dpi=50)
    fig.add_subplot().plot([1, 3, 2])
    return fig


def png_of(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 10, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def client(emulator: Emulator) -> Mistral:
    return Mistral(server_url=emulator.url)


# -- nb_mistral.stream with a list of text and images ---------------------------------------


def test_figure_is_a_png_chunk_and_picks_a_vision_model(
    emulator: Emulator, client: Mistral
) -> None:
    fig = figure()
    reply = nb_mistral.stream(["What does this plot show?", fig], client=client)
    (body,) = chat_bodies(emulator)
    assert body["model"] == "mistral-small-latest"  # vision model by default
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What does this plot show?"},
                {"type": "image_url", "image_url": data_url(png_of(fig), "image/png")},
            ],
        }
    ]
    assert "Images received: 1 — PNG 200×150." in reply.text


def test_pil_image_bytes_and_path(emulator: Emulator, client: Mistral, tmp_path: Path) -> None:
    picture = Image.new("RGBA", (7, 5), (1, 2, 3, 255))
    jpeg = jpeg_bytes()
    path = tmp_path / "photo.webp"
    Image.new("RGB", (9, 4), (0, 128, 0)).save(path, format="WEBP")
    reply = nb_mistral.stream(
        ["Compare", picture, jpeg, path], client=client, model="pixtral-large-latest"
    )
    (body,) = chat_bodies(emulator)
    assert body["model"] == "pixtral-large-latest"  # a chosen model is kept
    text, pil_chunk, jpeg_chunk, path_chunk = body["messages"][0]["content"]
    assert text == {"type": "text", "text": "Compare"}
    assert jpeg_chunk == {"type": "image_url", "image_url": data_url(jpeg, "image/jpeg")}
    assert path_chunk["image_url"] == data_url(path.read_bytes(), "image/webp")
    prefix = "data:image/png;base64,"
    assert pil_chunk["image_url"].startswith(prefix)
    decoded = Image.open(io.BytesIO(base64.b64decode(pil_chunk["image_url"][len(prefix) :])))
    assert decoded.size == (7, 5) and decoded.getpixel((3, 2)) == (1, 2, 3, 255)
    assert "Images received: 3 — PNG 7×5, JPEG 30×20, WEBP 9×4." in reply.text


def test_ipython_image(emulator: Emulator, client: Mistral) -> None:
    jpeg = jpeg_bytes()
    nb_mistral.stream(["See", IPythonImage(data=jpeg, format="jpeg")], client=client)
    (body,) = chat_bodies(emulator)
    assert body["messages"][0]["content"][1]["image_url"] == data_url(jpeg, "image/jpeg")


def test_over_limit_images_send_nothing(
    emulator: Emulator, client: Mistral, tmp_path: Path
) -> None:
    huge = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024)
    with pytest.raises(ContextError, match=r"over the API's limit of 10 MB per image"):
        nb_mistral.stream(["Look", huge], client=client)
    small = jpeg_bytes()
    with pytest.raises(ContextError, match=r"9 images, over the API's limit of 8"):
        nb_mistral.stream(["Look", *[small] * 9], client=client)
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(ContextError, match=r"the file '.*fake.png' is not a PNG, JPEG"):
        nb_mistral.stream(["Look", fake], client=client)
    with pytest.raises(ContextError, match="cannot read the image"):
        nb_mistral.stream(["Look", tmp_path / "missing.jpg"], client=client)
    assert chat_bodies(emulator) == []


def test_table_in_a_list_prompt(emulator: Emulator, client: Mistral) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    nb_mistral.stream(["Sum it:", frame], client=client)
    (body,) = chat_bodies(emulator)
    assert body["model"] == "mistral-large-latest"  # no image: the default model
    assert body["messages"][0]["content"] == "Sum it:\n\n" + describe_table(frame)


# -- DataFrame, Series and arrays described --------------------------------------------------


def test_dataframe_description_is_exact() -> None:
    frame = pd.DataFrame({"city": ["Paris", "Ly|on"], "temp": [21.5, 19.0]})
    dtypes = f"city ({frame.dtypes['city']}), temp (float64)"
    assert describe_table(frame, name="df") == (
        "pandas DataFrame `df`: 2 rows × 2 columns\n"
        f"dtypes: {dtypes}\n"
        "\n"
        "|  | city | temp |\n"
        "| --- | --- | --- |\n"
        "| 0 | Paris | 21.5 |\n"
        "| 1 | Ly\\|on | 19.0 |\n"
        "\n"
        "(All rows and columns shown.)"
    )


def test_long_and_wide_frames_say_what_they_leave_out() -> None:
    frame = pd.DataFrame(np.arange(5000 * 3).reshape(5000, 3), columns=["x", "y", "z"])
    text = describe_table(frame, name="df", max_chars=8000)
    assert "5,000 rows × 3 columns" in text
    assert "\n| 19 | 57 | 58 | 59 |\n" in text and "\n| 20 |" not in text
    assert text.endswith("(First 20 rows shown; left out: 4,980 of 5,000 rows.)")
    assert "..." not in text
    wide = pd.DataFrame([[i] * 400 for i in range(3)], columns=[f"c{i}" for i in range(400)])
    text = describe_table(wide, name="w", max_chars=2000)
    assert len(text) <= 2000 and "of 400 columns" in text


# -- %%mistral in-process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nb_mistral")
    yield ip


@pytest.fixture
def cell(shell: InteractiveShell, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MISTRAL_SERVER_URL", emulator.url)
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)

    def run(line: str, body: str) -> Any:
        return shell.run_cell_magic("mistral", line, body)

    return run


def sent_content(emulator: Emulator) -> Any:
    return chat_bodies(emulator)[-1]["messages"][-1]["content"]


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame({"n": [1, 2, 3], "s": ["a", "b", "c"]}),
        pd.Series([1.5, 2.5], name="price"),
        np.array([[1, 2], [3, 4]]),
    ],
    ids=["dataframe", "series", "array"],
)
def test_magic_sends_tables_described(
    cell: Any, shell: InteractiveShell, emulator: Emulator, value: Any
) -> None:
    shell.user_ns["data"] = value
    cell("", "Summarise {data} please")
    expected = describe_table(value, name="data")
    assert sent_content(emulator) == f"Summarise {expected} please"
    assert "..." not in expected


def test_magic_all_rows_and_over_budget(
    cell: Any, shell: InteractiveShell, emulator: Emulator
) -> None:
    shell.user_ns["big"] = pd.DataFrame({"v": range(30)})
    cell("", "{big:all}")
    assert "(All rows and columns shown.)" in sent_content(emulator)
    shell.user_ns["big"] = pd.DataFrame({"v": range(5000)})
    before = len(chat_bodies(emulator))
    with pytest.raises(CellError, match=r"\{big:all\}: all 5,000 rows need about"):
        cell("", "{big:all}")
    assert len(chat_bodies(emulator)) == before  # nothing sent


def test_magic_figure_and_path(
    cell: Any, shell: InteractiveShell, emulator: Emulator, tmp_path: Path
) -> None:
    fig = figure()
    path = tmp_path / "p.jpg"
    path.write_bytes(jpeg_bytes())
    shell.user_ns.update(fig=fig, path=str(path))
    cell("", "Compare {fig} with {path}.")
    body = chat_bodies(emulator)[-1]
    assert body["model"] == "mistral-small-latest"
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "Compare "},
        {"type": "image_url", "image_url": data_url(png_of(fig), "image/png")},
        {"type": "text", "text": " with "},
        {"type": "image_url", "image_url": data_url(path.read_bytes(), "image/jpeg")},
        {"type": "text", "text": "."},
    ]
    assert "Images received: 2 — PNG 200×150, JPEG 30×20." in shell.user_ns["_mistral"].text


def test_magic_err_is_the_last_exception(
    cell: Any, shell: InteractiveShell, emulator: Emulator
) -> None:
    shell.run_cell("def broken():\n    return 1 / 0\n", store_history=True)
    shell.run_cell("broken()", store_history=True)
    failed = shell.execution_count - 1
    shell.run_cell("raise KeyError('missing key')", store_history=True)
    cell("", "Explain {Err}")
    content = sent_content(emulator)
    assert content.startswith(f"Explain Exception in cell [{failed + 1}]:\n```\nTraceback")
    assert content.endswith("KeyError: 'missing key'\n```")
    assert "IPython" not in content and "interactiveshell" not in content
    cell("", f"Explain {{Err[{failed}]}}")
    content = sent_content(emulator)
    assert f"Cell In[{failed}], line 1, in <module>\n    broken()\n" in content
    assert ", line 2, in broken\n    return 1 / 0\n" in content
    assert content.endswith("ZeroDivisionError: division by zero\n```")


def test_magic_points_out_unresolved_names(
    cell: Any, shell: InteractiveShell, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns["name"] = "Ada"
    cell("", 'Hello {nmae} and {name}; JSON {"k": 1} and {Err[9999]} stay')
    out = capsys.readouterr().out.splitlines()
    notes = [line for line in out if line.startswith("nb_mistral:")]
    assert notes == [out[0]]  # one line, before the reply
    assert out[0].startswith(
        "nb_mistral: left as written in the prompt: {nmae}: no variable named nmae "
        "(did you mean name?); {Err[9999]}: LookupError: cell 9999 raised no exception "
    )
    assert sent_content(emulator) == 'Hello {nmae} and Ada; JSON {"k": 1} and {Err[9999]} stay'


def test_magic_schema_and_tools(cell: Any, shell: InteractiveShell, emulator: Emulator) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    def population(city: str) -> int:
        """Population of a city."""
        return 2_100_000

    shell.user_ns.update(City=City, population=population)
    cell("-o city", "Describe Paris")
    cell("--schema City -o city", "Describe Paris")
    assert isinstance(shell.user_ns["city"].parsed, City)
    cell("--tools population -o pop", "Ask population about Paris")
    reply = shell.user_ns["pop"]
    assert reply.messages[2] == {
        "role": "tool",
        "content": "2100000",
        "tool_call_id": reply.tool_calls[0].id,
        "name": "population",
    }
    with pytest.raises(CellError, match="--tools: nothing_here is no such name"):
        cell("--tools nothing_here", "x")
    with pytest.raises(CellError, match="--schema population: a Pydantic model class"):
        cell("--schema population", "x")


def test_a_large_frame_costs_what_a_small_one_does() -> None:
    """Only the rows that can be shown are formatted (a baseline from the same test)."""

    def median_seconds(value: Any) -> float:
        times = []
        for _ in range(7):
            started = time.perf_counter()
            describe_table(value)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    rng = np.random.default_rng(0)
    small = median_seconds(pd.DataFrame(rng.random((100, 5))))
    large = median_seconds(pd.DataFrame(rng.random((2_000_000, 5))))
    array = median_seconds(np.arange(20_000_000))
    assert large < 5 * small and array < 5 * small


def test_scalar_and_3d_arrays() -> None:
    assert "| 0 | 3.5 |" in describe_table(np.array(3.5))
    cube = describe_table(np.arange(8).reshape(2, 2, 2))
    assert "shape (2 × 2 × 2)" in cube and "| 1 | 4 | 5 | 6 | 7 |" in cube
