"""Errors of the e-prescription reading layer: every one names where it happened.

``source`` is the file (or other origin) the message came from, ``line``/``column`` the
position in the XML the problem is in, and ``where`` the path of the document inside the
message (``MsgHead/Document[1]/RefDoc/Content/LegemidlerIBruk/EnkeltoppforingLIB[2]/
ReseptDokLegemiddelB64``) when it is in a base64-embedded document, whose lines count from
the start of the decoded document.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a message, with its stable ``code``."""

    code: str
    message: str
    source: str
    line: int | None = None
    column: int | None = None
    where: str | None = None

    def __str__(self) -> str:
        position = self.source
        if self.where:
            position += f" [{self.where}]"
        if self.line is not None:
            position += f":{self.line}"
            if self.column is not None:
                position += f":{self.column}"
        return f"{position}: {self.code}: {self.message}"


class EreseptError(Exception):
    """A message was refused; ``problems`` lists every reason (at least one)."""

    def __init__(self, problems: list[Problem]):
        if not problems:
            raise ValueError("an EreseptError needs at least one problem")
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def code(self) -> str:
        return self.problems[0].code


class MalformedXml(EreseptError):
    """Not well-formed XML (or truncated)."""


class UnsafeXml(EreseptError):
    """A DTD, entity declaration or processing the hardened parser refuses."""


class LimitExceeded(EreseptError):
    """Bigger or deeper than the configured limits."""


class EmbeddedNotXml(EreseptError):
    """A base64 payload that does not decode, or decodes to something that is not XML."""


class UnknownMessage(EreseptError):
    """A message type, or a document namespace, we do not handle."""


class SchemaViolation(EreseptError):
    """The message or one of its documents breaks its XSD."""


class SignatureInvalid(EreseptError):
    """An XML signature that does not verify against the trust store."""


class SchemaConfigMissing(Exception):
    """No XSD folder, or a schema the folder should hold is not there (configuration)."""
