"""An offline emulator of Mistral's chat, files and batch APIs, for tests, demos and notebooks
without a key.

``Emulator`` runs it in-process (in a daemon thread); ``python -m nb_mistral.emulator``
runs it as a server. It is built on tornado (installed with every Jupyter kernel).
"""

from ._batch import OUTCOME_KEY, BatchStatus
from ._emulator import Emulator
from ._recorder import RecordedRequest
from ._replies import EMULATOR_NOTICE, CannedReply, CannedToolCall, build_reply, split_tokens

__all__ = [
    "EMULATOR_NOTICE",
    "OUTCOME_KEY",
    "BatchStatus",
    "CannedReply",
    "CannedToolCall",
    "Emulator",
    "RecordedRequest",
    "build_reply",
    "split_tokens",
]
