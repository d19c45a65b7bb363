"""Reading national e-prescription messages (MsgHead with M1, M5, M10, M25.x, M27.1).

A package of its own beside the loop, with no business rules: hardened parsing
(:mod:`.parsing`), the envelope and documents as typed values (:mod:`.model`,
:mod:`.content`), base64-embedded documents unwrapped to any depth and each validated
against its XSD chosen by namespace (:mod:`.schemas`), XML signatures reported or verified
(:mod:`.signatures`), all put together by :func:`read_message`.
"""

from medloop.eresept.config import Limits, ReaderConfig
from medloop.eresept.errors import EreseptError, Problem, SchemaConfigMissing
from medloop.eresept.reader import HANDLED_TYPES, Message, read_message

__all__ = [
    "HANDLED_TYPES",
    "EreseptError",
    "Limits",
    "Message",
    "Problem",
    "ReaderConfig",
    "SchemaConfigMissing",
    "read_message",
]
