"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nb_mistral.emulator import Emulator
from nb_mistral.store import CACHE_ENV, STORE_ENV


@pytest.fixture(scope="session", autouse=True)
def private_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every reply of the test run goes to a store in a temp folder, never the real home's:
    ``NB_MISTRAL_STORE`` is set before any kernel starts (kernels inherit it), and a cache
    mode from the environment is ignored."""
    path = str(tmp_path_factory.mktemp("store") / "replies.sqlite3")
    saved = {name: os.environ.get(name) for name in (STORE_ENV, CACHE_ENV)}
    os.environ[STORE_ENV] = path
    os.environ.pop(CACHE_ENV, None)
    yield path
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A started offline emulator (as fast as possible, no key), stopped after the test."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Make more started emulators with any ``Emulator`` kwargs; all stopped after the test."""
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


# -- a real Jupyter kernel (tests/kernel_harness.py) -----------------------------------------


@pytest.fixture(scope="module")
def kernel_emulator() -> Iterator[Emulator]:
    """An emulator shared by the tests of one module, for the kernel to talk to."""
    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def nb_kernel(kernel_emulator: Emulator) -> Iterator[Any]:
    """A real ipykernel for one test module, with ``%load_ext nb_mistral`` done.

    Its environment has ``MISTRAL_SERVER_URL`` pointing at ``kernel_emulator``, no
    ``MISTRAL_API_KEY``, and a random would-be key in ``NB_TEST_WRONG_KEY``
    (``nb_kernel.env["NB_TEST_WRONG_KEY"]``) for tests that configure a key without writing
    it in a cell.
    """
    import secrets

    from kernel_harness import start_nb_kernel

    wrong_key = "wrongkey-" + secrets.token_hex(16)
    harness = start_nb_kernel(kernel_emulator.url, NB_TEST_WRONG_KEY=wrong_key)
    try:
        yield harness
    finally:
        harness.stop()


# -- a server that misbehaves on purpose (tests/faulty_server.py) ---------------------------


@pytest.fixture
def faulty_server() -> Iterator[Any]:
    """A started ``FaultyServer`` with a good stream scripted; tests call ``.script(...)``."""
    from faulty_server import FaultyServer

    with FaultyServer() as server:
        yield server


# -- the client, sync and async (tests/client_drivers.py) -----------------------------------


@pytest.fixture(params=["sync", "await", "plain"], ids=["sync", "async-await", "async-plain"])
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each test that takes it runs three times: sync, ``async with await
    client.chat.stream_async(...)`` and ``async with client.chat.stream_async(...)``."""
    from client_drivers import AsyncDriver, SyncDriver

    made = SyncDriver() if request.param == "sync" else AsyncDriver(request.param)
    yield made
    made.finish()


@pytest.fixture
def waits() -> Any:
    """Retry waits recorded instead of slept (``waits.policy(n)`` for ``max_retries``)."""
    from client_drivers import Waits

    return Waits()
