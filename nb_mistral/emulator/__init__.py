"""An offline emulator of Mistral's chat API, for tests, demos and notebooks without a key.

``Emulator`` runs it in-process (in a daemon thread); ``python -m nb_mistral.emulator``
runs it as a server. Standard library only.
"""

from ._emulator import Emulator
from ._replies import EMULATOR_NOTICE, Reply, build_reply, split_tokens
from ._server import RecordedRequest

__all__ = [
    "EMULATOR_NOTICE",
    "Emulator",
    "RecordedRequest",
    "Reply",
    "build_reply",
    "split_tokens",
]
