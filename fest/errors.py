"""Errors raised while reading or importing a FEST file."""

from __future__ import annotations


class FestFormatError(Exception):
    """The file is not a readable FEST M30 document; names file, line and column."""

    def __init__(self, path: str, line: int | None, column: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        super().__init__(str(self))

    def __reduce__(self):
        # Picklable, so that the parser process can hand it to the importing process.
        return (type(self), (self.path, self.line, self.column, self.message))

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class FestImportRejected(Exception):
    """The file is readable but was refused (e.g. implausible shrinkage or an older file)."""


class FestConfigurationError(ValueError):
    """A setting of the import (e.g. a ``MEDLOOP_FEST_MAX_*`` limit) is not usable."""
